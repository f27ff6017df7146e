"""Preference pairs (and SFT rows) derived from feedback: the rules that turn annotations into training data.

Plain Python, no Django: the Django layer maps its rows onto the input dataclasses below, calls the
`pairs_from_*` functions and stores the `PairRow`s they yield as `PreferencePair`s. One function per kind
of feedback, each following the rule of the system it comes from (design.md §1, §8):

- corrections (RLHF-V): chosen = the corrected answer, rejected = the original, with the changed
  character spans of both texts (they become per-token weights in DDPO);
- pairwise judgments: a majority over annotators per (item, unordered response pair);
- crowd ratings (New Yorker caption contest): pairs of captions of the same cartoon whose mean scores
  differ by more than `z` times their combined standard error; per-item SFT rows with `[GOOD]`/`[BAD]`
  control tokens (SciCap);
- rankings: every pair the order implies;
- AI feedback (RLAIF-V): score = − number of rejected claims, gap ≥ 1, at most 2 pairs per prompt, and
  the length balancing of RLAIF-V's `utils/get_pairs_filter_shorten.py`.

Spans are half-open character offsets `(start, end)` into the text they belong to.
"""

from __future__ import annotations

import difflib
import itertools
import math
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Span = tuple[int, int]
# (start, end, replacement, type) over the original text, as the annotator marks it (design.md §4).
Segment = tuple[int, int, str, str]

HUMOR_SCALE: tuple[str, ...] = ("unfunny", "somewhat_funny", "funny")
GOOD_TOKEN = "[GOOD]"  # noqa: S105 - a control token, not a secret
BAD_TOKEN = "[BAD]"  # noqa: S105 - a control token, not a secret

PAIRWISE_CHOICES = ("a", "b", "tie", "both_bad")


@dataclass
class PairRow:
    """One preference pair, the unit every pair export writes."""

    item_key: str
    prompt: str
    image: str | None
    chosen: str
    rejected: str
    source: str
    margin: float | None = None
    agreement: float | None = None
    n_votes: int = 1
    chosen_spans: list[Span] = field(default_factory=list)
    rejected_spans: list[Span] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SFTRow:
    """One supervised example: `completion` already carries its control token where one is used."""

    item_key: str
    prompt: str
    image: str | None
    completion: str
    label: str = ""
    score: float | None = None
    n_votes: int = 0


# ---------------------------------------------------------------------------------------------------
# Changed spans


# Word-level pieces the way byte-level BPE pre-tokenizers cut text: a word or a punctuation mark with
# the whitespace before it, or trailing whitespace. Diffing these keeps spans on token boundaries.
_PIECE = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")


def _pieces(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in _PIECE.finditer(text)]


def diff_segments(original: str, corrected: str) -> list[Segment]:
    """The edits that turn `original` into `corrected`, as `(start, end, replacement, "edit")` segments.

    Computed with `difflib.SequenceMatcher` over word pieces (a word or punctuation mark with its leading
    whitespace), then each changed block is narrowed by the characters its two sides share at the start
    and end (" red" → " blue" marks "red"). Applying the segments to `original` gives `corrected`
    exactly; a pure insertion has `start == end`.
    """
    a, b = _pieces(original), _pieces(corrected)
    matcher = difflib.SequenceMatcher(None, [p[0] for p in a], [p[0] for p in b], autojunk=False)
    segments: list[Segment] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        start = a[i1][1] if i1 < len(a) else len(original)
        end = a[i2 - 1][2] if i2 > i1 else start
        b_start = b[j1][1] if j1 < len(b) else len(corrected)
        b_end = b[j2 - 1][2] if j2 > j1 else b_start
        # Refine to characters: " red" -> " blue" changes "red", not the space before it.
        while start < end and b_start < b_end and original[start] == corrected[b_start]:
            start, b_start = start + 1, b_start + 1
        while start < end and b_start < b_end and original[end - 1] == corrected[b_end - 1]:
            end, b_end = end - 1, b_end - 1
        segments.append((start, end, corrected[b_start:b_end], "edit"))
    return segments


def apply_segments(text: str, segments: Iterable[Segment]) -> str:
    """`text` with every segment's `[start, end)` replaced by its replacement (segments must not overlap)."""
    out: list[str] = []
    cursor = 0
    for start, end, replacement, _type in _check_segments(text, segments):
        out.append(text[cursor:start])
        out.append(replacement)
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def _check_segments(text: str, segments: Iterable[Segment]) -> list[Segment]:
    ordered = sorted((tuple(s) for s in segments), key=lambda s: (s[0], s[1]))
    previous_end = 0
    for start, end, replacement, _type in ordered:
        if not (isinstance(start, int) and isinstance(end, int)) or not 0 <= start <= end <= len(text):
            raise ValueError(f"segment ({start}, {end}) is outside the text (length {len(text)})")
        if start < previous_end:
            raise ValueError(f"segment ({start}, {end}) overlaps the one before it")
        if not isinstance(replacement, str):
            raise ValueError(f"segment ({start}, {end}) has a replacement that is not text")
        previous_end = end
    return ordered  # type: ignore[return-value]


def segments_check(text: str, segments: Iterable[Segment]) -> list[Segment]:
    """The segments sorted by start; `ValueError` if one lies outside `text`, overlaps another, or has a
    replacement that is not text."""
    return _check_segments(text, segments)


def _spans_of_segments(segments: Sequence[Segment]) -> tuple[list[Span], list[Span]]:
    """Spans in the original and in the corrected text of segments sorted by start (empty spans dropped)."""
    original_spans: list[Span] = []
    corrected_spans: list[Span] = []
    shift = 0  # how far the corrected text has moved against the original so far
    for start, end, replacement, _type in segments:
        if end > start:
            original_spans.append((start, end))
        if replacement:
            corrected_spans.append((start + shift, start + shift + len(replacement)))
        shift += len(replacement) - (end - start)
    return _merge_touching(original_spans), _merge_touching(corrected_spans)


def _merge_touching(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def changed_spans(original: str, corrected: str) -> tuple[list[Span], list[Span]]:
    """Changed character spans of both texts: `(spans in original, spans in corrected)`.

    The spans are the non-matching blocks of a word-piece diff (see `diff_segments`), as RLHF-V marks
    corrected segments. Outside the spans both texts are identical, character for character; a deletion
    leaves no span in `corrected`, an insertion none in `original`.
    """
    return _spans_of_segments(diff_segments(original, corrected))


# ---------------------------------------------------------------------------------------------------
# Corrections (RLHF-V)


@dataclass
class CorrectionInput:
    """An annotator's correction of one response: marked segments and/or the corrected text."""

    item_key: str
    prompt: str
    image: str | None
    original_text: str
    corrected_text: str | None
    segments: list[Segment] = field(default_factory=list)
    annotator: str = ""


def pairs_from_corrections(corrections: Iterable[CorrectionInput]) -> Iterator[PairRow]:
    """One pair per correction: chosen = corrected text, rejected = original, with changed spans.

    When the segments applied to the original give the corrected text (or no corrected text is given),
    the spans are exactly the marked segments; when the annotator also edited outside the segments, the
    spans come from a diff of the two texts (`changed_spans`). A correction that changes nothing ("no
    hallucination") yields no pair. Each correction is its own pair: two annotators correcting the same
    answer give two pairs.
    """
    for correction in corrections:
        segments = _check_segments(correction.original_text, correction.segments)
        applied = apply_segments(correction.original_text, segments)
        corrected = correction.corrected_text if correction.corrected_text is not None else applied
        if corrected == correction.original_text:
            continue
        if segments and applied == corrected:
            rejected_spans, chosen_spans = _spans_of_segments(segments)
        else:
            rejected_spans, chosen_spans = changed_spans(correction.original_text, corrected)
        yield PairRow(
            item_key=correction.item_key,
            prompt=correction.prompt,
            image=correction.image,
            chosen=corrected,
            rejected=correction.original_text,
            source="correction",
            margin=None,
            agreement=None,
            n_votes=1,
            chosen_spans=chosen_spans,
            rejected_spans=rejected_spans,
            meta={"annotator": correction.annotator, "segment_types": sorted({s[3] for s in segments})},
        )


# ---------------------------------------------------------------------------------------------------
# Pairwise judgments


@dataclass
class PairwiseVote:
    """One annotator's judgment of responses A and B as shown (the display order is randomized)."""

    item_key: str
    prompt: str
    image: str | None
    text_a: str
    text_b: str
    response_a_id: str | int
    response_b_id: str | int
    choice: str
    strength: float = 1.0
    annotator: str = ""

    def __post_init__(self) -> None:
        if self.choice not in PAIRWISE_CHOICES:
            raise ValueError(f"choice must be one of {PAIRWISE_CHOICES}, not {self.choice!r}")
        if self.response_a_id == self.response_b_id:
            raise ValueError("a pairwise judgment needs two different responses")


def pairs_from_pairwise(votes: Iterable[PairwiseVote]) -> Iterator[PairRow]:
    """Majority pairs over annotators, one per (item, unordered response pair).

    Rule (every vote counts in `n_votes`, whatever its choice):

    - a vote for A or B is a win for that response (by response id, so the shown order does not matter);
    - "tie" and "both_bad" are votes for neither side;
    - the response with more wins is chosen; equal wins (including none) give no pair;
    - if "both_bad" votes are more than half of all votes, no pair: the crowd says neither answer is
      good, and training towards the "better" one would teach a bad answer;
    - `agreement` = winner's wins / all votes (ties and both-bad count against agreement);
    - `margin` = (strength of the winner's wins − strength of the loser's wins) / all votes.

    Pairs come out in the order their (item, pair) was first seen.
    """
    groups: dict[tuple[str, frozenset], list[PairwiseVote]] = {}
    for vote in votes:
        groups.setdefault((vote.item_key, frozenset((vote.response_a_id, vote.response_b_id))), []).append(vote)
    for (item_key, _ids), group in groups.items():
        texts: dict[str | int, str] = {}
        wins: dict[str | int, int] = defaultdict(int)
        strength: dict[str | int, float] = defaultdict(float)
        both_bad = 0
        for vote in group:
            texts[vote.response_a_id] = vote.text_a
            texts[vote.response_b_id] = vote.text_b
            if vote.choice in ("a", "b"):
                winner = vote.response_a_id if vote.choice == "a" else vote.response_b_id
                wins[winner] += 1
                strength[winner] += vote.strength
            elif vote.choice == "both_bad":
                both_bad += 1
        first, second = (group[0].response_a_id, group[0].response_b_id)
        n_votes = len(group)
        if wins[first] == wins[second] or both_bad * 2 > n_votes:
            continue
        chosen_id, rejected_id = (first, second) if wins[first] > wins[second] else (second, first)
        yield PairRow(
            item_key=item_key,
            prompt=group[0].prompt,
            image=group[0].image,
            chosen=texts[chosen_id],
            rejected=texts[rejected_id],
            source="pairwise",
            margin=(strength[chosen_id] - strength[rejected_id]) / n_votes,
            agreement=wins[chosen_id] / n_votes,
            n_votes=n_votes,
            meta={
                "chosen_response": chosen_id,
                "rejected_response": rejected_id,
                "wins": [wins[chosen_id], wins[rejected_id]],
                "ties": n_votes - wins[chosen_id] - wins[rejected_id] - both_bad,
                "both_bad": both_bad,
            },
        )


# ---------------------------------------------------------------------------------------------------
# Ratings (caption contest, SciCap)


@dataclass
class RatingAggregate:
    """Counts of ratings of one response (caption) on an ordered scale, worst level first.

    Level `scale[k]` has the value `k + 1`, so on the humor scale unfunny = 1, somewhat funny = 2,
    funny = 3, as the caption-contest tables score them.
    """

    item_key: str
    prompt: str
    image: str | None
    text: str
    counts: dict[str, int]
    scale: tuple[str, ...] = HUMOR_SCALE
    response_key: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.counts) - set(self.scale)
        if unknown:
            raise ValueError(f"counts for levels not on the scale {self.scale}: {sorted(unknown)}")
        for level, n in self.counts.items():
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"count of {level!r} must be a non-negative integer, not {n!r}")

    @property
    def votes(self) -> int:
        return sum(self.counts.values())

    @property
    def mean(self) -> float:
        """Σ value·n / votes; NaN without votes."""
        if self.votes == 0:
            return math.nan
        return sum((k + 1) * self.counts.get(level, 0) for k, level in enumerate(self.scale)) / self.votes

    @property
    def precision(self) -> float:
        """Standard error of the mean: sample standard deviation / √votes; infinite below two votes."""
        votes = self.votes
        if votes < 2:
            return math.inf
        mean = self.mean
        squares = sum(self.counts.get(level, 0) * (k + 1 - mean) ** 2 for k, level in enumerate(self.scale))
        return math.sqrt(squares / (votes - 1)) / math.sqrt(votes)


def pairs_from_ratings(
    aggregates: Iterable[RatingAggregate],
    *,
    top_half_chosen: bool = True,
    z: float = 3.0,
    max_pairs_per_chosen: int | None = None,
) -> Iterator[PairRow]:
    """Caption pairs of the same item whose mean scores differ by more than their combined uncertainty.

    Per item, captions are sorted by mean (best first). A chosen caption comes from the top half
    (ranks 1..⌈n/2⌉; every caption with `top_half_chosen=False`), a rejected one from any caption below
    it, and the pair is kept iff `mean_c − mean_r > z·√(prec_c² + prec_r²)` — the humor work's rule with
    `z = 3`. `margin` = mean_c − mean_r. For each chosen caption, rejected candidates are tried from the
    lowest mean up, so `max_pairs_per_chosen` keeps the clearest pairs. Captions without votes are
    skipped. Aggregates of one item are held in memory; pairs are yielded as they are found.
    """
    if z < 0:
        raise ValueError("z must be non-negative")
    by_item: dict[str, list[RatingAggregate]] = {}
    for aggregate in aggregates:
        if aggregate.votes > 0:
            by_item.setdefault(aggregate.item_key, []).append(aggregate)
    for item_key, captions in by_item.items():
        stats = sorted(
            ((a.mean, a.precision, a) for a in captions), key=lambda s: (-s[0], s[2].response_key, s[2].text)
        )
        n_chosen = math.ceil(len(stats) / 2) if top_half_chosen else len(stats)
        for i in range(n_chosen):
            mean_c, prec_c, chosen = stats[i]
            kept = 0
            for j in range(len(stats) - 1, i, -1):
                mean_r, prec_r, rejected = stats[j]
                threshold = z * math.sqrt(prec_c**2 + prec_r**2)
                if not mean_c - mean_r > threshold:
                    continue
                yield PairRow(
                    item_key=item_key,
                    prompt=chosen.prompt,
                    image=chosen.image,
                    chosen=chosen.text,
                    rejected=rejected.text,
                    source="rating",
                    margin=mean_c - mean_r,
                    agreement=None,
                    n_votes=chosen.votes + rejected.votes,
                    meta={
                        "chosen_response": chosen.response_key,
                        "rejected_response": rejected.response_key,
                        "chosen_mean": mean_c,
                        "rejected_mean": mean_r,
                        "chosen_precision": prec_c,
                        "rejected_precision": prec_r,
                        "threshold": threshold,
                    },
                )
                kept += 1
                if max_pairs_per_chosen is not None and kept >= max_pairs_per_chosen:
                    break


def sft_rows_from_ratings(
    aggregates: Iterable[RatingAggregate],
    *,
    threshold: float,
    good_token: str = GOOD_TOKEN,
    bad_token: str = BAD_TOKEN,
) -> Iterator[SFTRow]:
    """One SFT row per rated response: `"[GOOD] text"` if its mean ≥ `threshold`, else `"[BAD] text"`.

    This is SciCap's feedback-conditioned captioning: train on both, generate with `[GOOD]`. Responses
    without votes are skipped.
    """
    for aggregate in aggregates:
        if aggregate.votes == 0:
            continue
        good = aggregate.mean >= threshold
        yield SFTRow(
            item_key=aggregate.item_key,
            prompt=aggregate.prompt,
            image=aggregate.image,
            completion=f"{good_token if good else bad_token} {aggregate.text}",
            label="good" if good else "bad",
            score=aggregate.mean,
            n_votes=aggregate.votes,
        )


# ---------------------------------------------------------------------------------------------------
# Rankings


@dataclass
class RankingInput:
    """An ordering of an item's responses, best first."""

    item_key: str
    prompt: str
    image: str | None
    texts_in_order: list[str]
    annotator: str = ""


def pairs_from_rankings(rankings: Iterable[RankingInput]) -> Iterator[PairRow]:
    """Every pair a ranking implies: n(n−1)/2 pairs for n responses, margin = distance in ranks.

    Each ranking is used on its own (several annotators' rankings of one item give pairs each).
    """
    for ranking in rankings:
        texts = ranking.texts_in_order
        for (i, better), (j, worse) in itertools.combinations(enumerate(texts), 2):
            yield PairRow(
                item_key=ranking.item_key,
                prompt=ranking.prompt,
                image=ranking.image,
                chosen=better,
                rejected=worse,
                source="ranking",
                margin=float(j - i),
                agreement=None,
                n_votes=1,
                meta={"annotator": ranking.annotator, "ranks": [i + 1, j + 1]},
            )


# ---------------------------------------------------------------------------------------------------
# AI feedback (RLAIF-V)


@dataclass
class AIScored:
    """The AI labeler's verdict on one response: its score, or the claim counts to compute it from."""

    item_key: str
    prompt: str
    image: str | None
    text: str
    score: float | None = None
    n_claims: int = 0
    n_rejected: int = 0
    response_key: str = ""

    @property
    def answer_score(self) -> float:
        """The given score, else RLAIF-V's: − number of rejected claims."""
        return self.score if self.score is not None else -float(self.n_rejected)


def _words(text: str) -> int:
    return len(text.split())


def _length_gap(pairs: Sequence[PairRow]) -> float:
    chosen = sum(_words(p.chosen) for p in pairs) / len(pairs)
    rejected = sum(_words(p.rejected) for p in pairs) / len(pairs)
    return abs(chosen - rejected) / rejected if rejected else math.inf


def _drop_much_shorter_chosen(pairs: Sequence[PairRow], ratio: float) -> list[PairRow]:
    kept = []
    for pair in pairs:
        rejected_len = _words(pair.rejected)
        shortening = (rejected_len - _words(pair.chosen)) / rejected_len if rejected_len else 0.0
        if shortening > ratio or pair.chosen.strip() == pair.rejected.strip():
            continue
        kept.append(pair)
    return kept


def balance_lengths(pairs: Sequence[PairRow], *, step: float = 0.02) -> list[PairRow]:
    """RLAIF-V's length balancing, so that chosen answers are not simply the shorter ones.

    Pairs whose chosen answer is shorter than the rejected one by more than a ratio r of the rejected
    length (in words) are dropped, with r searched over 0, step, 2·step, … < 1 to make the mean chosen
    length closest to the mean rejected length (relative difference). Identical answers are dropped.
    """
    best: list[PairRow] = []
    best_gap = math.inf
    ratio = 0.0
    while ratio < 1.0:
        kept = _drop_much_shorter_chosen(pairs, ratio)
        gap = _length_gap(kept) if kept else math.inf
        if gap < best_gap:
            best, best_gap = kept, gap
        ratio = round(ratio + step, 10)
    return best


def pairs_from_ai_feedback(
    scored: Iterable[AIScored],
    *,
    min_gap: float = 1.0,
    max_pairs_per_prompt: int = 2,
    length_balance: bool = True,
    seed: int = 0,
) -> Iterator[PairRow]:
    """RLAIF-V's pairs: responses to the same prompt whose scores differ by at least `min_gap`.

    All score-separated pairs of an item are formed (chosen = higher score), at most
    `max_pairs_per_prompt` of them are drawn at random (seeded, so the result is reproducible), and with
    `length_balance` the drawn pairs go through `balance_lengths`. `margin` = score difference. The
    balancing looks at all pairs at once, so they are built in memory before the first is yielded.
    """
    if min_gap <= 0:
        raise ValueError("min_gap must be positive, else a pair could have equal scores")
    rng = random.Random(seed)
    by_item: dict[str, list[AIScored]] = {}
    for response in scored:
        by_item.setdefault(response.item_key, []).append(response)
    pairs: list[PairRow] = []
    for item_key, responses in by_item.items():
        candidates = []
        for first, second in itertools.combinations(responses, 2):
            gap = first.answer_score - second.answer_score
            if abs(gap) < min_gap:
                continue
            chosen, rejected = (first, second) if gap > 0 else (second, first)
            candidates.append(
                PairRow(
                    item_key=item_key,
                    prompt=chosen.prompt,
                    image=chosen.image,
                    chosen=chosen.text,
                    rejected=rejected.text,
                    source="ai",
                    margin=abs(gap),
                    agreement=None,
                    n_votes=1,
                    meta={
                        "chosen_response": chosen.response_key,
                        "rejected_response": rejected.response_key,
                        "chosen_score": chosen.answer_score,
                        "rejected_score": rejected.answer_score,
                    },
                )
            )
        if len(candidates) > max_pairs_per_prompt:
            candidates = rng.sample(candidates, max_pairs_per_prompt)
        pairs.extend(candidates)
    if length_balance and pairs:
        pairs = balance_lengths(pairs)
    yield from pairs


def as_pair_row(row: PairRow | Mapping[str, Any]) -> PairRow:
    """A `PairRow` from itself or from a mapping with its field names (spans as lists of 2-lists)."""
    if isinstance(row, PairRow):
        return row
    data = dict(row)
    for key in ("chosen_spans", "rejected_spans"):
        data[key] = [tuple(span) for span in data.get(key) or []]
    return PairRow(**data)
