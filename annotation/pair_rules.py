"""Preference pairs (and SFT rows) derived from feedback: the rules that turn annotations into training data.

Plain Python, no Django: the Django layer maps its rows onto the input dataclasses below, calls the
`pairs_from_*` functions and stores the `PairRow`s they yield as `PreferencePair`s. One function per kind
of feedback, each following the rule of the system it comes from (design.md §1, §8):

- corrections (RLHF-V): chosen = the corrected answer, rejected = the original, with the changed
  character spans of both texts (they become per-token weights in DDPO);
- pairwise judgments: a majority over annotators per (item, unordered response pair);
- crowd ratings (New Yorker caption contest): pairs of captions of the same cartoon whose mean scores
  differ by more than `z` times their combined standard error, the rejected caption drawn at random
  (seeded) among those ranked below the chosen one; per-item SFT rows with `[GOOD]`/`[BAD]` control
  tokens (SciCap), split at the median rating;
- rankings: every pair the order implies;
- AI feedback (RLAIF-V): score = − number of rejected claims, gap ≥ 1, at most 2 pairs per prompt, and
  the length balancing of RLAIF-V's `utils/get_pairs_filter_shorten.py`.

No rule ever pairs an answer with itself (`same_answer`): such a pair prefers nothing and teaches only
noise. Every `pairs_from_*` takes an optional `dropped` counter that counts the pairs left out that way
(`dropped[SELF_PAIR]`), so an import can say how many it dropped.

Spans are half-open character offsets `(start, end)` into the text they belong to.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import math
import random
import re
import statistics
from collections import Counter, defaultdict
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
# How `pairs_from_ratings` draws the rejected captions of a chosen one (see there).
RATING_DRAWS = ("uniform", "stratified")
# The key under which every rule counts the pairs it leaves out because both sides are the same answer.
SELF_PAIR = "self_pairs"


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


def same_answer(chosen: str, rejected: str) -> bool:
    """Whether two answers are the same text once whitespace is ignored: then they are no pair.

    Whitespace-only differences (leading, trailing, or inside: "a  cat" vs "a cat") do not count as a
    difference: a pair that differs only there prefers nothing a reader could see, and would teach the
    model spacing. This is RLAIF-V's `chosen.strip() == rejected.strip()` check, widened to inner
    whitespace.
    """
    return chosen.split() == rejected.split()


def _is_self_pair(chosen: str, rejected: str, dropped: Counter[str] | None) -> bool:
    """`same_answer`, counted in `dropped[SELF_PAIR]` when it holds (the rules' one place for it)."""
    if not same_answer(chosen, rejected):
        return False
    if dropped is not None:
        dropped[SELF_PAIR] += 1
    return True


def item_rng(seed: int, item_key: str) -> random.Random:
    """A random generator for one item that is the same on every run and machine.

    Seeded from SHA-256 of `seed` and the item key, not Python's `hash()` (salted per process), and per
    item, so an item's draws do not change when other items are added or removed.
    """
    digest = hashlib.sha256(f"{seed}:{item_key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


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


def pairs_from_corrections(
    corrections: Iterable[CorrectionInput], *, dropped: Counter[str] | None = None
) -> Iterator[PairRow]:
    """One pair per correction: chosen = corrected text, rejected = original, with changed spans.

    When the segments applied to the original give the corrected text (or no corrected text is given),
    the spans are exactly the marked segments; when the annotator also edited outside the segments, the
    spans come from a diff of the two texts (`changed_spans`). A correction that changes nothing but
    whitespace ("no hallucination"; an imported RLHF-V record whose chosen answer is its rejected one)
    yields no pair and counts as a self-pair. Each correction is its own pair: two annotators correcting
    the same answer give two pairs.
    """
    for correction in corrections:
        segments = _check_segments(correction.original_text, correction.segments)
        applied = apply_segments(correction.original_text, segments)
        corrected = correction.corrected_text if correction.corrected_text is not None else applied
        if _is_self_pair(corrected, correction.original_text, dropped):
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


def pairs_from_pairwise(votes: Iterable[PairwiseVote], *, dropped: Counter[str] | None = None) -> Iterator[PairRow]:
    """Majority pairs over annotators, one per (item, unordered response pair).

    Rule (every vote counts in `n_votes`, whatever its choice):

    - a vote for A or B is a win for that response (by response id, so the shown order does not matter);
    - "tie" and "both_bad" are votes for neither side;
    - the response with more wins is chosen; equal wins (including none) give no pair;
    - if "both_bad" votes are more than half of all votes, no pair: the crowd says neither answer is
      good, and training towards the "better" one would teach a bad answer;
    - `agreement` = winner's wins / all votes (ties and both-bad count against agreement);
    - `margin` = (strength of the winner's wins − strength of the loser's wins) / all votes;
    - two responses with the same text (`same_answer`) give no pair, whatever the votes.

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
        if _is_self_pair(texts[chosen_id], texts[rejected_id], dropped):
            continue
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
    """Ratings of one response (caption) on an ordered scale, worst level first: counts per level, and/or
    a summary given without them (mean, precision, votes), as some caption-contest tables publish it.

    Level `scale[k]` has the value `k + 1`, so on the humor scale unfunny = 1, somewhat funny = 2,
    funny = 3, as the caption-contest tables score them.

    A given summary is `given_votes` votes with mean `given_mean` and standard error `given_precision`.
    The margin test of `pairs_from_ratings` needs only a mean and a standard error per caption, and both
    can be had from such a summary: the votes' sum of squared deviations is precision² · n · (n − 1)
    (the standard-error formula solved for it), so a summary and level counts (say Loupe's own ratings
    of an imported caption) pool into one mean and one standard error exactly as if the summary's votes
    had been counted level by level. Without counts, `mean` is the given mean and `precision` the given
    one, floored as `precision` describes.
    """

    item_key: str
    prompt: str
    image: str | None
    text: str
    counts: dict[str, int]
    scale: tuple[str, ...] = HUMOR_SCALE
    response_key: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    given_mean: float | None = None
    given_precision: float | None = None
    given_votes: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.counts) - set(self.scale)
        if unknown:
            raise ValueError(f"counts for levels not on the scale {self.scale}: {sorted(unknown)}")
        for level, n in self.counts.items():
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"count of {level!r} must be a non-negative integer, not {n!r}")
        given = (self.given_mean, self.given_precision)
        if self.given_votes == 0 and given == (None, None):
            return
        if not isinstance(self.given_votes, int) or isinstance(self.given_votes, bool) or self.given_votes < 1:
            raise ValueError(f"a given summary needs a positive whole number of votes, not {self.given_votes!r}")
        if self.given_mean is None or not 1 <= self.given_mean <= len(self.scale):
            raise ValueError(f"the given mean must lie on the scale, 1 to {len(self.scale)}, not {self.given_mean!r}")
        if self.given_precision is None or not 0 <= self.given_precision < math.inf:
            raise ValueError(f"the given precision must be a finite standard error, not {self.given_precision!r}")

    @property
    def votes(self) -> int:
        return sum(self.counts.values()) + self.given_votes

    @property
    def mean(self) -> float:
        """Σ value·n / votes over counted and given votes; NaN without votes."""
        votes = self.votes
        if votes == 0:
            return math.nan
        total = sum((k + 1) * self.counts.get(level, 0) for k, level in enumerate(self.scale))
        if self.given_votes:
            total += self.given_mean * self.given_votes  # type: ignore[operator]
        return total / votes

    def _squares(self, mean: float) -> float:
        """Σ(x − mean)² over all votes: the counted ones level by level, the given ones from their standard
        error (p² · n · (n − 1)) plus their mean's offset from `mean` (n · (given mean − mean)²)."""
        squares = sum(self.counts.get(level, 0) * (k + 1 - mean) ** 2 for k, level in enumerate(self.scale))
        n = self.given_votes
        if n:
            squares += self.given_precision**2 * n * (n - 1) + n * (self.given_mean - mean) ** 2  # type: ignore[operator]
        return squares

    @property
    def precision(self) -> float:
        """Standard error of the mean, as the caption contest's own tables compute it.

        NEXT's KL-UCB app, which wrote the `precision` column of the contest tables, uses
        √(max(1, Σ(x − mean)²) / (n − 1) / n): the sample standard error with the sum of squared
        deviations floored at 1, so it is never below 1/√(n(n − 1)). The floor matters only when (almost)
        all votes fall in one level: 3 votes, all "unfunny", give 1/√6 ≈ 0.41 rather than 0, and such a
        caption no longer looks infinitely certain and wins every margin test. Wherever Σ(x − mean)² ≥ 1
        (every caption of the real tables) it is the plain sample standard error, equal to the tables'
        column. We use this floor rather than a Bayesian prior on the counts because a prior would shift
        every caption's value away from the tables. One vote gets NEXT's value for it, R = half the
        scale's range; no votes an infinite one. A given summary enters through its Σ(x − mean)²
        (see the class), so the floor applies to it as well: a given precision of 0 over n votes counts
        as 1/√(n(n − 1)).
        """
        votes = self.votes
        if votes == 0:
            return math.inf
        if votes == 1:
            return (len(self.scale) - 1) / 2
        return math.sqrt(max(1.0, self._squares(self.mean)) / (votes - 1) / votes)


# Where a response's metadata keeps a rating summary given without level counts (mean, precision, votes).
RATING_SUMMARY_KEY = "rating_summary"


def given_summary_fields(summary: Mapping[str, Any] | None) -> dict[str, Any]:
    """`RatingAggregate` keyword arguments for a summary stored as `{"mean", "precision", "votes"}`; {} for none."""
    if not summary:
        return {}
    return {
        "given_mean": float(summary["mean"]),
        "given_precision": float(summary["precision"]),
        "given_votes": int(summary["votes"]),
    }


def _draw_rejected(candidates: list[int], k: int | None, draw: str, rng: random.Random) -> list[int]:
    """Up to `k` of the `candidates` (indexes in rank order), drawn as `pairs_from_ratings` describes."""
    if k is None or len(candidates) <= k:
        return candidates
    if draw == "uniform":
        return sorted(rng.sample(candidates, k))
    # Stratified: k contiguous rank bands of (nearly) equal size, one caption drawn from each.
    bounds = [round(band * len(candidates) / k) for band in range(k + 1)]
    return [candidates[rng.randrange(bounds[band], bounds[band + 1])] for band in range(k)]


class _MarginTest:
    """Which captions ranked below caption i pass `mean_i − mean_j > z·√(var_i + var_j)`, without testing
    every one of them: a 10,000-caption contest has 37 million (chosen, below) pairs, which took most of
    its import.

    The means are sorted best first, so the gap mean_i − mean_j never shrinks as j goes down the ranking.
    Below rank i, a caption whose gap is at most z·√var_i fails (its own variance only raises the bar),
    and one whose gap exceeds z·√(var_i + the largest variance from j down) passes; both bounds move one
    way only, so each is found by bisection, and only the captions between them are tested one by one.
    Every comparison is the test's own floating-point expression or a bound of it, so the result is
    exactly that of testing every pair.
    """

    def __init__(self, means: list[float], variances: list[float], z: float) -> None:
        self.means, self.variances, self.z = means, variances, z
        self.largest_below = list(itertools.accumulate(reversed(variances), max))[::-1]

    def _first(self, low: int, high: int, holds: Any) -> int:
        """The first j in [low, high) for which the monotone `holds(j)` is true, else `high`."""
        while low < high:
            middle = (low + high) // 2
            if holds(middle):
                high = middle
            else:
                low = middle + 1
        return low

    def passing(self, i: int) -> list[int]:
        """The ranks j > i whose caption passes the margin test against caption i, in rank order."""
        means, variances, z, n = self.means, self.variances, self.z, len(self.means)
        mean, variance = means[i], variances[i]
        near = self._first(i + 1, n, lambda j: mean - means[j] > z * math.sqrt(variance))
        far = self._first(near, n, lambda j: mean - means[j] > z * math.sqrt(variance + self.largest_below[j]))
        tested = [j for j in range(near, far) if mean - means[j] > z * math.sqrt(variance + variances[j])]
        return tested + list(range(far, n))


def pairs_from_ratings(
    aggregates: Iterable[RatingAggregate],
    *,
    top_half_chosen: bool = True,
    z: float = 3.0,
    max_pairs_per_chosen: int | None = None,
    draw: str = "uniform",
    seed: int = 0,
    dropped: Counter[str] | None = None,
) -> Iterator[PairRow]:
    """Caption pairs of the same item whose mean scores differ by more than their combined uncertainty.

    Per item, captions are sorted by mean (best first). A chosen caption comes from the top half
    (ranks 1..⌈n/2⌉; every caption with `top_half_chosen=False`); its candidates are the captions ranked
    below it that pass the humor work's margin test `mean_c − mean_r > z·√(prec_c² + prec_r²)` (z = 3)
    and are not the same text. With `max_pairs_per_chosen = k`, k of them are drawn at random, as the
    Humor paper's preprocessing draws the rejected caption uniformly among captions ranked below:

    - `draw="uniform"`: k candidates uniformly without replacement;
    - `draw="stratified"`: the candidates (in rank order) cut into k contiguous bands of nearly equal
      size and one drawn uniformly from each, so near and far rejected captions both appear.

    Taking the clearest (lowest-mean) candidates instead would reuse the same few worst captions as the
    rejected side of nearly every pair, and a reward model would learn only "avoid these five". The
    draws are seeded per item from `seed` and the item key (`item_rng`), so the pairs are the same on
    every run and machine. Without a cap every candidate becomes a pair. `margin` = mean_c − mean_r.
    Captions without votes are skipped. Aggregates of one item are held in memory; pairs are yielded as
    they are found, in rank order of chosen, then rejected.
    """
    if z < 0:
        raise ValueError("z must be non-negative")
    if draw not in RATING_DRAWS:
        raise ValueError(f"draw must be one of {RATING_DRAWS}, not {draw!r}")
    if max_pairs_per_chosen is not None and max_pairs_per_chosen < 1:
        raise ValueError("max_pairs_per_chosen must be at least 1 (or None for no cap)")
    by_item: dict[str, list[RatingAggregate]] = {}
    for aggregate in aggregates:
        if aggregate.votes > 0:
            by_item.setdefault(aggregate.item_key, []).append(aggregate)
    for item_key, captions in by_item.items():
        rng = item_rng(seed, item_key)
        ranked = sorted(captions, key=lambda a: (-a.mean, a.response_key, a.text))
        means = [a.mean for a in ranked]
        precisions = [a.precision for a in ranked]
        variances = [p * p for p in precisions]
        n_chosen = math.ceil(len(ranked) / 2) if top_half_chosen else len(ranked)
        margin_test = _MarginTest(means, variances, z)
        same_text: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for index, aggregate in enumerate(ranked):
            same_text[tuple(aggregate.text.split())].append(index)
        for i in range(n_chosen):
            chosen = ranked[i]
            candidates = margin_test.passing(i)
            for j in same_text[tuple(chosen.text.split())]:
                if j > i and j in candidates and _is_self_pair(chosen.text, ranked[j].text, dropped):
                    candidates.remove(j)
            for j in _draw_rejected(candidates, max_pairs_per_chosen, draw, rng):
                rejected = ranked[j]
                yield PairRow(
                    item_key=item_key,
                    prompt=chosen.prompt,
                    image=chosen.image,
                    chosen=chosen.text,
                    rejected=rejected.text,
                    source="rating",
                    margin=means[i] - means[j],
                    agreement=None,
                    n_votes=chosen.votes + rejected.votes,
                    meta={
                        "chosen_response": chosen.response_key,
                        "rejected_response": rejected.response_key,
                        "chosen_mean": means[i],
                        "rejected_mean": means[j],
                        "chosen_precision": precisions[i],
                        "rejected_precision": precisions[j],
                        "threshold": z * math.sqrt(variances[i] + variances[j]),
                    },
                )


def median_threshold(aggregates: Iterable[RatingAggregate]) -> float:
    """The median of the mean ratings of the responses with votes: SciCap's `[GOOD]`/`[BAD]` split.

    FigCapsHF (SciCap's RLHF) quantizes helpfulness into two levels with
    `np.digitize(scores, np.percentile(scores, 50))`: a score equal to the median lands in the upper
    level, so `sft_rows_from_ratings` calls a mean ≥ this threshold `[GOOD]`. With many ties at the
    median more than half the responses are `[GOOD]`; that is the reference's rule, kept as it is.
    `ValueError` when no response has votes.
    """
    means = [a.mean for a in aggregates if a.votes > 0]
    if not means:
        raise ValueError("no rated responses to take a median of")
    return statistics.median(means)


def sft_rows_from_ratings(
    aggregates: Iterable[RatingAggregate],
    *,
    threshold: float,
    good_token: str = GOOD_TOKEN,
    bad_token: str = BAD_TOKEN,
) -> Iterator[SFTRow]:
    """One SFT row per rated response: `"[GOOD] text"` if its mean ≥ `threshold`, else `"[BAD] text"`.

    This is SciCap's feedback-conditioned captioning: train on both, generate with `[GOOD]`. SciCap
    splits at the median rating (`median_threshold`), a mean equal to it counting as good. Responses
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


def pairs_from_rankings(rankings: Iterable[RankingInput], *, dropped: Counter[str] | None = None) -> Iterator[PairRow]:
    """Every pair a ranking implies: n(n−1)/2 pairs for n responses, margin = distance in ranks.

    Each ranking is used on its own (several annotators' rankings of one item give pairs each). Two
    ranked responses with the same text give no pair.
    """
    for ranking in rankings:
        texts = ranking.texts_in_order
        for (i, better), (j, worse) in itertools.combinations(enumerate(texts), 2):
            if _is_self_pair(better, worse, dropped):
                continue
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


def _shortening(chosen_words: int, rejected_words: int) -> float:
    """How much shorter the chosen answer is, as a share of the rejected one's length (in words)."""
    return (rejected_words - chosen_words) / rejected_words if rejected_words else 0.0


def length_balance_ratio(pairs: Iterable[tuple[str, str]], *, step: float = 0.02) -> float | None:
    """RLAIF-V's length balancing: the shortening ratio r beyond which pairs are dropped.

    `pairs` are the `(chosen, rejected)` texts of all pairs. Dropping the pairs whose chosen
    answer is shorter than the rejected one by more than r of the rejected length, r searched over
    0, step, 2·step, … < 1, the r returned makes the mean chosen length closest to the mean rejected
    length (relative difference; the first such r), so that chosen answers are not simply the shorter
    ones — `utils/get_pairs_filter_shorten.py` of RLAIF-V. Only the word counts are kept, so a snapshot
    can find r over millions of pairs without holding their texts. None when no r keeps a pair.
    """
    lengths = [(_words(chosen), _words(rejected)) for chosen, rejected in pairs]
    best: float | None = None
    best_gap = math.inf
    ratio = 0.0
    while ratio < 1.0:
        kept = [(c, r) for c, r in lengths if not _shortening(c, r) > ratio]
        if kept:
            rejected = sum(r for _c, r in kept) / len(kept)
            chosen = sum(c for c, _r in kept) / len(kept)
            gap = abs(chosen - rejected) / rejected if rejected else math.inf
            if gap < best_gap:
                best, best_gap = ratio, gap
        ratio = round(ratio + step, 10)
    return best


def length_balance_keeps(chosen: str, rejected: str, ratio: float | None) -> bool:
    """Whether a pair survives length balancing at `ratio` (from `length_balance_ratio`; None keeps none)."""
    return ratio is not None and not _shortening(_words(chosen), _words(rejected)) > ratio


def balance_lengths(pairs: Sequence[PairRow], *, step: float = 0.02) -> list[PairRow]:
    """The pairs that survive RLAIF-V's length balancing (`length_balance_ratio`) over all of them;
    pairs of the same answer are dropped first, as RLAIF-V's filter drops them."""
    pairs = [p for p in pairs if not same_answer(p.chosen, p.rejected)]
    ratio = length_balance_ratio([(p.chosen, p.rejected) for p in pairs], step=step)
    return [p for p in pairs if length_balance_keeps(p.chosen, p.rejected, ratio)]


def pairs_from_ai_feedback(
    scored: Iterable[AIScored],
    *,
    min_gap: float = 1.0,
    max_pairs_per_prompt: int = 2,
    length_balance: bool = True,
    seed: int = 0,
    dropped: Counter[str] | None = None,
) -> Iterator[PairRow]:
    """RLAIF-V's pairs: responses to the same prompt whose scores differ by at least `min_gap`.

    All score-separated pairs of an item are formed (chosen = higher score; two responses with the same
    text are never a pair), at most `max_pairs_per_prompt` of them are drawn at random (seeded per item
    by `item_rng`, so the result is reproducible), and with `length_balance` the drawn pairs go through
    `balance_lengths`. `margin` = score difference. The balancing looks at all pairs at once, so they are
    built in memory before the first is yielded; the platform balances a whole snapshot's AI pairs
    instead (one item's pairs give it nothing to balance).
    """
    if min_gap <= 0:
        raise ValueError("min_gap must be positive, else a pair could have equal scores")
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
            if _is_self_pair(chosen.text, rejected.text, dropped):
                continue
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
            candidates = item_rng(seed, item_key).sample(candidates, max_pairs_per_prompt)
        pairs.extend(candidates)
    if length_balance and pairs:
        pairs = balance_lengths(pairs)
    yield from pairs


# ---------------------------------------------------------------------------------------------------
# AI rewrites (HA-DPO)


def rewrite_segments(original: str, rewrite: str, *, kind: str = "edit", max_segments: int = 200) -> list[Segment]:
    """The edits that turn `original` into `rewrite`, as correction segments an annotator could have marked.

    They are `diff_segments`, widened where a marked span cannot be empty: a pure insertion takes in the
    word before it (the word after it at the start of the text), and edits whose widened spans then touch
    or overlap become one segment. Every segment is a non-empty span of `original` whose replacement
    differs from it, and applying them gives `rewrite` exactly. More than `max_segments` edits (what a
    correction may hold) become one segment from the first edit to the last. No segments when the two
    texts are equal or `original` is empty (there is nothing to mark).
    """
    raw = diff_segments(original, rewrite)
    if not raw or not original:
        return []
    widened = [(_widened(original, start, end), (start, end, replacement, kind)) for start, end, replacement, _k in raw]
    clusters: list[tuple[int, int, list[Segment]]] = []
    for (start, end), segment in widened:
        if clusters and start <= clusters[-1][1]:
            first, last, members = clusters[-1]
            clusters[-1] = (first, max(last, end), [*members, segment])
        else:
            clusters.append((start, end, [segment]))
    if len(clusters) > max_segments:
        clusters = [(clusters[0][0], clusters[-1][1], [s for _a, _b, members in clusters for s in members])]
    segments: list[Segment] = []
    for start, end, members in clusters:
        shifted = [(s - start, e - start, r, k) for s, e, r, k in members]
        replacement = apply_segments(original[start:end], shifted)
        if replacement != original[start:end]:
            segments.append((start, end, replacement, kind))
    return segments


def _widened(text: str, start: int, end: int) -> tuple[int, int]:
    """A non-empty span around `[start, end)`: itself, or for an insertion the word before it (after it)."""
    if end > start:
        return start, end
    before = start
    while before > 0 and text[before - 1].isspace():
        before -= 1
    word_start = before
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    if word_start < before:
        return word_start, start
    after = end
    while after < len(text) and text[after].isspace():
        after += 1
    while after < len(text) and not text[after].isspace():
        after += 1
    return (start, after) if after > start else (0, len(text))


@dataclass
class RewriteInput:
    """An answer and the corrected answer the AI labeler wrote for it from its rejected claims (HA-DPO)."""

    item_key: str
    prompt: str
    image: str | None
    original_text: str
    rewrite_text: str
    labeler: str = ""
    prompt_version: str = ""
    response_key: str = ""


def pairs_from_rewrites(rewrites: Iterable[RewriteInput], *, dropped: Counter[str] | None = None) -> Iterator[PairRow]:
    """One AI pair per rewrite, made without a person: chosen = the rewrite, rejected = the original, with
    the changed spans of both from a diff (`changed_spans`), as HA-DPO pairs a rewritten description with
    the hallucinated one and as a person's correction would give. A rewrite that changes only whitespace
    yields nothing (a self-pair). `meta["rewrite"]` marks the pair; `is_rewrite_pair` tells one apart
    from a score pair in a snapshot row."""
    for rewrite in rewrites:
        if _is_self_pair(rewrite.rewrite_text, rewrite.original_text, dropped):
            continue
        rejected_spans, chosen_spans = changed_spans(rewrite.original_text, rewrite.rewrite_text)
        yield PairRow(
            item_key=rewrite.item_key,
            prompt=rewrite.prompt,
            image=rewrite.image,
            chosen=rewrite.rewrite_text,
            rejected=rewrite.original_text,
            source="ai",
            margin=None,
            agreement=None,
            n_votes=1,
            chosen_spans=chosen_spans,
            rejected_spans=rejected_spans,
            meta={
                "rewrite": True,
                "labeler": rewrite.labeler,
                "prompt_version": rewrite.prompt_version,
                "rejected_response": rewrite.response_key,
            },
        )


def is_rewrite_pair(row: PairRow | Mapping[str, Any]) -> bool:
    """Whether an AI pair is a rewrite pair rather than a pair of two scored answers: score pairs never
    carry changed spans, and a rewrite pair always does (its texts differ beyond whitespace)."""
    get = row.get if isinstance(row, Mapping) else lambda key: getattr(row, key)
    return get("source") == "ai" and bool(get("chosen_spans") or get("rejected_spans"))


def as_pair_row(row: PairRow | Mapping[str, Any]) -> PairRow:
    """A `PairRow` from itself or from a mapping with its field names (spans as lists of 2-lists)."""
    if isinstance(row, PairRow):
        return row
    data = dict(row)
    for key in ("chosen_spans", "rejected_spans"):
        data[key] = [tuple(span) for span in data.get(key) or []]
    return PairRow(**data)
