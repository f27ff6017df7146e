"""Stored preference pairs (`PreferencePair` rows), and the rating aggregates and SFT rows, derived from
annotations. The rules themselves are plain Python in `annotation.pair_rules`; this module loads
annotations, calls them and stores what they yield.

Every kind of feedback goes through one path: `feedback_load` reads the annotations of a batch of items
(optionally only those of some annotators or of a date range, see `FeedbackScope`), and the `*_for_items`
functions map them onto the inputs of the pure rules and yield their rows:

- pairwise judgments → majority pairs per (item, response pair);
- corrections → (corrected, original) with the changed spans of both;
- ratings → per response the counts of each level, from `Rating` rows plus the aggregate counts an import
  stored in `Response.meta["rating_counts"]` (keyed by the project's level names), then caption pairs of
  the same item whose means differ by more than `RATING_PAIR_Z` times their combined standard error,
  at most `RATING_MAX_PAIRS_PER_CHOSEN` per chosen caption, the rejected ones drawn at random (seeded);
- rankings → every implied pair;
- AI feedback (`AIFeedback`, one labeler model and prompt version at a time) → RLAIF-V pairs (their
  length balancing needs all pairs at once and is applied when a snapshot is frozen), and HA-DPO rewrite
  pairs (the labeler's corrected answer over the original, with changed spans; none for a response a
  person corrected).

No source ever stores a pair of two identical answers (`pair_rules.same_answer`); `pairs_for_items`
counts the ones it left out, and imports report the count.

Submits never derive pairs (their cost would grow with the item: a contest's cartoon holds thousands of
captions); they mark the item stale (`Item.pairs_stale`) in their transaction, and
`preference_pairs_refresh_stale(project=...)` re-derives the stale items' pairs when a snapshot freezes
(most of them are derived before then, in the background: `annotation.services.pair_refresh`).
`preference_pairs_refresh(item=...)` re-derives one item's stored `PreferencePair`s at once (AI verdicts);
`preference_pairs_rebuild(items=...)` does it for many items (imports), and recounts their responses'
rating counters (`ResponseRatingCount`, which submits keep by increments). `ai_feedback_record` is
what the AI labeler calls with its verdict on a response, `ai_feedback_rewrite_record` with its rewrite.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, F, Q, TextField
from django.db.models.functions import Cast

from annotation import pair_rules
from annotation.models import (
    DEFAULT_RATING_LEVELS,
    AIFeedback,
    AnnotationReview,
    Correction,
    Item,
    PairSource,
    PairwiseJudgment,
    PreferencePair,
    Project,
    ProjectKind,
    Ranking,
    Rating,
    Response,
    ResponseRatingCount,
)
from annotation.selectors_review import feedback_reviewed
from loupe.errors import ApplicationError
from loupe.rows import id_list

# Pair settings; a deployment overrides them in Django settings (design.md §8 gives the defaults).
# z of the humor work's rule mean_c - mean_r > z * sqrt(prec_c^2 + prec_r^2):
RATING_PAIR_Z = 3.0
# Each chosen caption pairs with at most this many rejected ones, drawn at random among those below it
# that pass the margin test: a contest of 2,000 captions would otherwise give hundreds of thousands of
# pairs for one cartoon.
RATING_MAX_PAIRS_PER_CHOSEN = 5
# "uniform" or "stratified" (by rank), see `pair_rules.pairs_from_ratings`; and the seed of the draws.
RATING_PAIR_DRAW = "uniform"
RATING_PAIR_SEED = 0
AI_PAIR_MIN_GAP = 1.0
AI_MAX_PAIRS_PER_PROMPT = 2
# Seed of the draw of at most AI_MAX_PAIRS_PER_PROMPT pairs per prompt (per item, from its external id).
AI_PAIR_SEED = 0


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, f"LOUPE_{name}", default)


# RLAIF-V accepts a claim iff P(yes) > P(no) at the first answer token; with P(yes) normalized over the two
# answers that is P(yes) > 0.5.
CLAIM_ACCEPT_P_YES = 0.5


@dataclass(frozen=True)
class FeedbackScope:
    """Which feedback counts: all of it by default.

    `annotators` (user ids) keeps only annotations by those users; imported aggregate rating counts have
    no annotator and are then left out, and AI feedback counts only where `ai_labelers` names its labeler
    model. `created_from`/`created_to` (inclusive) keep annotations made in that time range; imported
    counts are dated by their item's import.
    """

    annotators: frozenset[int] | None = None
    ai_labelers: frozenset[str] | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None

    def created_q(self, prefix: str = "") -> Q:
        q = Q()
        if self.created_from is not None:
            q &= Q(**{f"{prefix}created_at__gte": self.created_from})
        if self.created_to is not None:
            q &= Q(**{f"{prefix}created_at__lte": self.created_to})
        return q


ALL_FEEDBACK = FeedbackScope()


@dataclass
class ItemFeedback:
    """One item with its responses and the annotations of each kind that pass the scope."""

    item: Item
    responses: dict[int, Response] = field(default_factory=dict)
    pairwise: list[PairwiseJudgment] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    ratings: list[Rating] = field(default_factory=list)
    rankings: list[Ranking] = field(default_factory=list)
    ai: list[AIFeedback] = field(default_factory=list)
    annotator_names: dict[int, str] = field(default_factory=dict)


def rating_scale(project: Project) -> tuple[str, ...]:
    """The project's rating levels, worst first (the default humor scale when none are set)."""
    return tuple(project.rating_levels or DEFAULT_RATING_LEVELS)


def feedback_load(*, items: Sequence[Item], scope: FeedbackScope = ALL_FEEDBACK) -> list[ItemFeedback]:
    """The items' responses and annotations in a fixed number of queries, whatever the batch size."""
    by_id = {item.pk: ItemFeedback(item=item) for item in items}
    ids = list(by_id)
    if not ids:
        return []
    for response in Response.objects.filter(item_id__in=ids).order_by("item_id", "position"):
        by_id[response.item_id].responses[response.pk] = response
    who = Q() if scope.annotators is None else Q(annotator_id__in=scope.annotators)
    when = scope.created_q()
    for model, attribute in (
        (PairwiseJudgment, "pairwise"),
        (Correction, "corrections"),
        (Rating, "ratings"),
        (Ranking, "rankings"),
    ):
        for row in model.objects.filter(Q(item_id__in=ids) & who & when).order_by("id"):
            getattr(by_id[row.item_id], attribute).append(row)
    if scope.annotators is None or scope.ai_labelers:
        ai = AIFeedback.objects.filter(Q(response__item_id__in=ids) & when).select_related("response")
        if scope.annotators is not None:
            ai = ai.filter(labeler_model__in=scope.ai_labelers)
        for feedback in ai.order_by("id"):
            by_id[feedback.response.item_id].ai.append(feedback)
    annotator_ids = {
        row.annotator_id
        for entry in by_id.values()
        for row in (*entry.pairwise, *entry.corrections, *entry.ratings, *entry.rankings)
    }
    names = dict(get_user_model().objects.filter(pk__in=annotator_ids).values_list("pk", "username"))
    for entry in by_id.values():
        entry.annotator_names = names
    return [by_id[item.pk] for item in items]


# ---------------------------------------------------------------------------------------------------
# Feedback → rows


@dataclass
class DerivedPair:
    """A pair row and the stored responses it compares (None where the text is not a response)."""

    row: pair_rules.PairRow
    chosen_response_id: int | None
    rejected_response_id: int | None


def _image(item: Item) -> str | None:
    return item.image or None


def _pairwise_pairs(entry: ItemFeedback, dropped: Counter[str]) -> Iterator[DerivedPair]:
    item = entry.item
    votes = []
    for judgment in entry.pairwise:
        a, b = entry.responses.get(judgment.response_a_id), entry.responses.get(judgment.response_b_id)
        if a is None or b is None or a.pk == b.pk:
            continue
        votes.append(
            pair_rules.PairwiseVote(
                item_key=item.external_id,
                prompt=item.prompt,
                image=_image(item),
                text_a=a.text,
                text_b=b.text,
                response_a_id=a.pk,
                response_b_id=b.pk,
                choice=judgment.choice,
                strength=float(judgment.strength),
                annotator=entry.annotator_names.get(judgment.annotator_id, ""),
            )
        )
    for row in pair_rules.pairs_from_pairwise(votes, dropped=dropped):
        yield DerivedPair(row, row.meta["chosen_response"], row.meta["rejected_response"])


def correction_segments(raw: Iterable[Any]) -> list[pair_rules.Segment]:
    """Stored segments (`{start, end, replacement, type}` objects or 4-lists) as rule tuples."""
    segments = []
    for segment in raw or []:
        if isinstance(segment, dict):
            segments.append(
                (
                    int(segment["start"]),
                    int(segment["end"]),
                    str(segment.get("replacement", "")),
                    str(segment.get("type", "")),
                )
            )
        else:
            start, end, replacement, kind = segment
            segments.append((int(start), int(end), str(replacement), str(kind)))
    return segments


def _correction_pairs(entry: ItemFeedback, dropped: Counter[str]) -> Iterator[DerivedPair]:
    item = entry.item
    for correction in entry.corrections:
        response = entry.responses.get(correction.response_id)
        if response is None:
            continue
        given = pair_rules.CorrectionInput(
            item_key=item.external_id,
            prompt=item.prompt,
            image=_image(item),
            original_text=response.text,
            corrected_text=correction.corrected_text,
            segments=correction_segments(correction.segments),
            annotator=entry.annotator_names.get(correction.annotator_id, ""),
        )
        for row in pair_rules.pairs_from_corrections([given], dropped=dropped):
            yield DerivedPair(row, None, response.pk)


# The imported caption metadata a rating aggregate carries into snapshots and exports.
_AGGREGATE_META = ("target_id", "rank", "score", "precision", "count", pair_rules.RATING_SUMMARY_KEY)


def rating_aggregates(
    entry: ItemFeedback, *, scale: tuple[str, ...], imported_counts: bool = True
) -> list[pair_rules.RatingAggregate]:
    """Per response of the item: counts of each level from its ratings plus imported aggregate counts, or
    the summary (mean, precision, votes) an import stored where its file had no level counts.

    Responses with none of these are left out. `response_key` is the response's id.
    """
    individual: dict[int, Counter] = defaultdict(Counter)
    for rating in entry.ratings:
        if 0 <= rating.level < len(scale):
            individual[rating.response_id][scale[rating.level]] += 1
    aggregates = []
    for response in entry.responses.values():
        stored = response.meta.get("rating_counts") if imported_counts else None
        summary = response.meta.get(pair_rules.RATING_SUMMARY_KEY) if imported_counts else None
        if not stored and not summary and response.pk not in individual:
            continue
        counts = Counter({level: int(n) for level, n in (stored or {}).items() if level in scale})
        counts.update(individual.get(response.pk, Counter()))
        aggregates.append(
            pair_rules.RatingAggregate(
                item_key=entry.item.external_id,
                prompt=entry.item.prompt,
                image=_image(entry.item),
                text=response.text,
                counts={level: counts[level] for level in scale if counts[level]},
                scale=scale,
                response_key=str(response.pk),
                meta={k: v for k, v in response.meta.items() if k in _AGGREGATE_META},
                **pair_rules.given_summary_fields(summary),
            )
        )
    return aggregates


def _rating_pairs(
    entry: ItemFeedback, dropped: Counter[str], *, scale: tuple[str, ...], imported_counts: bool
) -> Iterator[DerivedPair]:
    aggregates = rating_aggregates(entry, scale=scale, imported_counts=imported_counts)
    if len(aggregates) < 2:
        return
    for row in pair_rules.pairs_from_ratings(
        aggregates,
        z=_setting("RATING_PAIR_Z", RATING_PAIR_Z),
        max_pairs_per_chosen=_setting("RATING_MAX_PAIRS_PER_CHOSEN", RATING_MAX_PAIRS_PER_CHOSEN),
        draw=_setting("RATING_PAIR_DRAW", RATING_PAIR_DRAW),
        seed=_setting("RATING_PAIR_SEED", RATING_PAIR_SEED),
        dropped=dropped,
    ):
        yield DerivedPair(row, int(row.meta["chosen_response"]), int(row.meta["rejected_response"]))


def _ranking_pairs(entry: ItemFeedback, dropped: Counter[str]) -> Iterator[DerivedPair]:
    item = entry.item
    for ranking in entry.rankings:
        order = [int(i) for i in ranking.order if int(i) in entry.responses]
        given = pair_rules.RankingInput(
            item_key=item.external_id,
            prompt=item.prompt,
            image=_image(item),
            texts_in_order=[entry.responses[i].text for i in order],
            annotator=entry.annotator_names.get(ranking.annotator_id, ""),
        )
        for row in pair_rules.pairs_from_rankings([given], dropped=dropped):
            better, worse = row.meta["ranks"]
            yield DerivedPair(row, order[better - 1], order[worse - 1])


def _ai_pairs(entry: ItemFeedback, dropped: Counter[str]) -> Iterator[DerivedPair]:
    item = entry.item
    by_labeler: dict[tuple[str, str], list[pair_rules.AIScored]] = defaultdict(list)
    for feedback in entry.ai:
        response = entry.responses.get(feedback.response_id)
        if response is None:
            continue
        by_labeler[(feedback.labeler_model, feedback.prompt_version)].append(
            pair_rules.AIScored(
                item_key=item.external_id,
                prompt=item.prompt,
                image=_image(item),
                text=response.text,
                score=feedback.score,
                response_key=str(response.pk),
            )
        )
    yield from _rewrite_pairs(entry, dropped)
    for (labeler, version), scored in sorted(by_labeler.items()):
        # Length balancing compares whole datasets; one item's one or two pairs give it nothing to balance.
        # A snapshot balances all its AI pairs at once (`SnapshotFilter.balance_ai_lengths`).
        rows = pair_rules.pairs_from_ai_feedback(
            scored,
            min_gap=_setting("AI_PAIR_MIN_GAP", AI_PAIR_MIN_GAP),
            max_pairs_per_prompt=_setting("AI_MAX_PAIRS_PER_PROMPT", AI_MAX_PAIRS_PER_PROMPT),
            length_balance=False,
            seed=_setting("AI_PAIR_SEED", AI_PAIR_SEED),
            dropped=dropped,
        )
        for row in rows:
            row.meta.update(labeler=labeler, prompt_version=version)
            yield DerivedPair(row, int(row.meta["chosen_response"]), int(row.meta["rejected_response"]))


def _rewrite_pairs(entry: ItemFeedback, dropped: Counter[str]) -> Iterator[DerivedPair]:
    """HA-DPO pairs from the labeler's rewrites (`pair_rules.pairs_from_rewrites`), except for responses a
    person corrected within the scope: their reviewed correction is the better pair of the same answer,
    and a second, unreviewed one beside it would teach the same edit twice or contradict it."""
    item = entry.item
    corrected = {correction.response_id for correction in entry.corrections}
    rewrites = []
    for feedback in entry.ai:
        text = (feedback.rewrite or {}).get("text")
        response = entry.responses.get(feedback.response_id)
        if not text or response is None or response.pk in corrected:
            continue
        rewrites.append(
            pair_rules.RewriteInput(
                item_key=item.external_id,
                prompt=item.prompt,
                image=_image(item),
                original_text=response.text,
                rewrite_text=str(text),
                labeler=feedback.labeler_model,
                prompt_version=feedback.prompt_version,
                response_key=str(response.pk),
            )
        )
    for row in pair_rules.pairs_from_rewrites(rewrites, dropped=dropped):
        yield DerivedPair(row, None, int(row.meta["rejected_response"]))


def pairs_for_items(
    feedback: Iterable[ItemFeedback],
    *,
    scale: tuple[str, ...],
    sources: Iterable[str] | None = None,
    imported_counts: bool = True,
    dropped: Counter[str] | None = None,
) -> Iterator[DerivedPair]:
    """Every pair the feedback implies, item by item, from each source in `sources` (default: all).

    Pairs the rules leave out because both sides are the same answer are counted in
    `dropped[pair_rules.SELF_PAIR]` when a counter is given.
    """
    wanted = set(sources or PairSource.values)
    dropped = dropped if dropped is not None else Counter()
    # Decided once rather than per item (a rebuild goes through millions); a kind of which the item has no
    # annotation yields nothing, except ratings, which imported counts on its responses can give too.
    pairwise, corrections, ratings, rankings, ai = (
        source in wanted
        for source in (PairSource.PAIRWISE, PairSource.CORRECTION, PairSource.RATING, PairSource.RANKING, PairSource.AI)
    )
    for entry in feedback:
        if pairwise and entry.pairwise:
            yield from _pairwise_pairs(entry, dropped)
        if corrections and entry.corrections:
            yield from _correction_pairs(entry, dropped)
        if ratings:
            yield from _rating_pairs(entry, dropped, scale=scale, imported_counts=imported_counts)
        if rankings and entry.rankings:
            yield from _ranking_pairs(entry, dropped)
        if ai and entry.ai:
            yield from _ai_pairs(entry, dropped)


def sft_rows_for_items(
    feedback: Iterable[ItemFeedback], *, scale: tuple[str, ...], threshold: float, imported_counts: bool = True
) -> Iterator[pair_rules.SFTRow]:
    """SciCap's rows: each rated response with `[GOOD]` (mean ≥ threshold) or `[BAD]` before its text
    (`rating_median` gives SciCap's threshold)."""
    for entry in feedback:
        yield from pair_rules.sft_rows_from_ratings(
            rating_aggregates(entry, scale=scale, imported_counts=imported_counts), threshold=threshold
        )


def rating_median(feedback: Iterable[ItemFeedback], *, scale: tuple[str, ...], imported_counts: bool = True) -> float:
    """The median of the mean ratings of every rated response in `feedback`: SciCap's `[GOOD]` threshold
    (`pair_rules.median_threshold`). Holds one number per rated response."""
    return pair_rules.median_threshold(
        aggregate
        for entry in feedback
        for aggregate in rating_aggregates(entry, scale=scale, imported_counts=imported_counts)
    )


# ---------------------------------------------------------------------------------------------------
# Stored pairs


@dataclass(frozen=True)
class PairsRebuilt:
    """What re-deriving stored pairs did: pairs stored, and pairs left out as the same answer twice."""

    created: int
    self_pairs_dropped: int = 0


# The columns `preference_pairs_rebuild` writes (`updated_at` is dated by `rows_insert`).
_PAIR_COLUMNS = (
    "project_id",
    "item_id",
    "source",
    "chosen_response_id",
    "rejected_response_id",
    "chosen_text",
    "rejected_text",
    "margin",
    "agreement",
    "n_votes",
    "chosen_spans",
    "rejected_spans",
)


def _pair_values(derived: DerivedPair) -> tuple:
    """A derived pair's stored values, in `_PAIR_COLUMNS` order from `source` on (spans as Python lists)."""
    row = derived.row
    return (
        row.source,
        derived.chosen_response_id,
        derived.rejected_response_id,
        row.chosen,
        row.rejected,
        # Corrections and rankings-by-one have no crowd margin/agreement: stored as 1.0 (one clear vote).
        row.margin if row.margin is not None and math.isfinite(row.margin) else 1.0,
        row.agreement if row.agreement is not None else 1.0,
        row.n_votes,
        [list(span) for span in row.chosen_spans],
        [list(span) for span in row.rejected_spans],
    )


def _json_spans(spans: list) -> str:
    # What the JSONField itself would store (json.dumps, default separators); most pairs have no spans.
    return json.dumps(spans) if spans else "[]"


class _Row:
    """An item, response or annotation as the pair rules read it: the loaded columns as attributes.

    `preference_pairs_rebuild` reads millions of annotations at a time; a model instance for each cost more
    than everything else it does (bench/pair_refresh.py). These carry the same values under the same names
    (`pk` for the id), and take a reviewer's edited fields (`feedback_reviewed`) the same way.
    """

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__ = values


# The columns of each kind that `pairs_for_items` and `feedback_reviewed` read, by `ItemFeedback` attribute;
# and `updated_at` (whether a review is current), where the project has reviews.
_RULE_COLUMNS: dict[str, tuple[type, tuple[str, ...]]] = {
    "pairwise": (
        PairwiseJudgment,
        ("pk", "item_id", "annotator_id", "response_a_id", "response_b_id", "choice", "strength"),
    ),
    "corrections": (
        Correction,
        ("pk", "item_id", "annotator_id", "response_id", "corrected_text", "segments"),
    ),
    "ratings": (Rating, ("pk", "item_id", "annotator_id", "response_id", "level")),
    "rankings": (Ranking, ("pk", "item_id", "annotator_id", "order")),
}
_AI_COLUMNS = ("pk", "item_id", "response_id", "labeler_model", "prompt_version", "score", "rewrite")


def _rows(queryset: Any, names: Sequence[str]) -> list[_Row]:
    return [_Row(dict(zip(names, values, strict=False))) for values in queryset.values_list(*names)]


def _feedback_rows_load(*, item_ids: Sequence[int], reviewed: bool) -> list[ItemFeedback]:
    """`feedback_load(items=...)` of all feedback, with light rows (`_Row`) in place of model instances:
    the same rows in the same order, carrying every value the pair rules and `feedback_reviewed` read.

    `reviewed`: whether the project has any review, whose currency needs the annotations' `updated_at`
    (parsing a date per annotation is a tenth of the work otherwise; a review is always of an annotation of
    its own project, so without one `feedback_reviewed` never reads it).
    """
    dated = ("updated_at",) if reviewed else ()
    item_names = ("pk", "project_id", "external_id", "prompt", "image")
    items = _rows(Item.objects.filter(pk__in=id_list(item_ids)).order_by("id"), item_names)
    by_id = {item.pk: ItemFeedback(item=item) for item in items}  # type: ignore[arg-type]
    ids = list(by_id)
    if not ids:
        return []
    in_batch = id_list(ids)
    responses = Response.objects.filter(item_id__in=in_batch).order_by("item_id", "position")
    # The metadata as text, decoded here unless empty (most responses): what the JSONField would decode.
    responses = responses.annotate(meta_text=Cast("meta", TextField()))
    for response in _rows(responses, ("pk", "item_id", "text", "meta_text")):
        text = response.__dict__.pop("meta_text")
        response.meta = {} if text == "{}" else json.loads(text)
        by_id[response.item_id].responses[response.pk] = response
    annotator_ids: set[int] = set()
    for attribute, (model, names) in _RULE_COLUMNS.items():
        for row in _rows(model.objects.filter(item_id__in=in_batch).order_by("id"), names + dated):
            getattr(by_id[row.item_id], attribute).append(row)
            annotator_ids.add(row.annotator_id)
    ai = AIFeedback.objects.filter(response__item_id__in=in_batch).order_by("id")
    for feedback in _rows(ai.annotate(item_id=F("response__item_id")), _AI_COLUMNS):
        by_id[feedback.item_id].ai.append(feedback)
    names = dict(get_user_model().objects.filter(pk__in=annotator_ids).values_list("pk", "username"))
    for entry in by_id.values():
        entry.annotator_names = names
    return list(by_id.values())


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the duration (back on after, whatever happens).

    A batch allocates some hundred thousand small objects that live until its end (rows, inputs of the
    rules, their pairs), and none of them form cycles; each allocation burst made the collector walk the
    whole heap of the process again, more than half of the time of a rebuild (bench/pair_refresh.py:
    0.26 ms per item with it, 0.11 ms without). The collector is the process's, so other threads go without
    it for the batch too (a fraction of a second); what they leave is collected once it is back.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _pairs_rebuild_batch(*, project: Project, item_ids: Sequence[int], dropped: Counter[str]) -> int:
    """Re-derive one batch's stored pairs (inside the caller's transaction); the number stored.

    The items are row-locked first (PostgreSQL; SQLite's IMMEDIATE transaction already excludes every other
    writer): a submit marks its item stale with an UPDATE of that row, so it either committed before the
    lock and its annotation is read here, or it waits and marks the item stale again after.
    """
    from annotation.services.imports import rows_insert  # imports stores pairs through this module

    ids = id_list(item_ids)
    if connection.features.has_select_for_update:
        # NO KEY UPDATE: the lock a submit's UPDATE of the row takes, which leaves new leases of the
        # items (whose foreign keys take key-share locks) free to commit.
        list(Item.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("id").values_list("pk"))
    PreferencePair.objects.filter(item_id__in=ids).delete()
    reviewed = AnnotationReview.objects.filter(project_id=project.pk).exists()
    feedback = feedback_reviewed(_feedback_rows_load(item_ids=item_ids, reviewed=reviewed))
    item_by_key = {entry.item.external_id: entry.item.pk for entry in feedback}
    stored = []
    for derived in pairs_for_items(feedback, scale=rating_scale(project), dropped=dropped):
        values = _pair_values(derived)
        stored.append(
            (
                project.pk,
                item_by_key[derived.row.item_key],
                *values[:-2],
                _json_spans(values[-2]),
                _json_spans(values[-1]),
            )
        )
    rows_insert(PreferencePair, _PAIR_COLUMNS, stored)
    # Submits keep the counters by increments and only ratings have them: a batch with no rating in a project
    # that takes none (imports may add ratings to any project) has nothing to recount.
    if project.kind == ProjectKind.RATING or any(entry.ratings for entry in feedback):
        rating_counts_recount(item_ids=item_ids)
    Item.objects.filter(pk__in=ids, pairs_stale=True).update(pairs_stale=False)
    return len(stored)


@transaction.atomic
def preference_pairs_rebuild(*, items: Sequence[Item], batch_size: int = 2000) -> PairsRebuilt:
    """Re-derive the stored pairs of `items` (all of one project) from all their feedback, recount their
    responses' rating counters and mark them fresh, `batch_size` items at a time (`_pairs_rebuild_batch`)."""
    if not items:
        return PairsRebuilt(created=0)
    return preference_pairs_rebuild_ids(
        project=items[0].project, item_ids=[item.pk for item in items], batch_size=batch_size
    )


def preference_pairs_rebuild_ids(*, project: Project, item_ids: Sequence[int], batch_size: int = 2000) -> PairsRebuilt:
    """`preference_pairs_rebuild` of the project's items by id, in the caller's transaction (which holds the
    batches' row locks until it ends)."""
    created = 0
    dropped: Counter[str] = Counter()
    for start in range(0, len(item_ids), batch_size):
        with _gc_paused():
            created += _pairs_rebuild_batch(
                project=project, item_ids=item_ids[start : start + batch_size], dropped=dropped
            )
    return PairsRebuilt(created=created, self_pairs_dropped=dropped[pair_rules.SELF_PAIR])


def preference_pairs_refresh(*, item: Item) -> list[PreferencePair]:
    """Re-derive one item's pairs from all its feedback (after an AI verdict; submits only mark the item
    stale, see `preference_pairs_refresh_stale`)."""
    preference_pairs_rebuild(items=[item])
    return list(PreferencePair.objects.filter(item=item).order_by("id"))


@transaction.atomic
def preference_pairs_refresh_stale(*, project: Project, batch_size: int = 2000) -> PairsRebuilt:
    """Re-derive the pairs of every item of the project whose feedback changed since its pairs were last
    derived (`Item.pairs_stale`, set by submits): what a snapshot does before it reads the stored pairs,
    so it holds every acknowledged annotation. One read of a partial index when nothing changed (and little
    is left when the background refresh, `annotation.services.pair_refresh`, has run since)."""
    ids = list(Item.objects.filter(project=project, pairs_stale=True).order_by("id").values_list("id", flat=True))
    return preference_pairs_rebuild_ids(project=project, item_ids=ids, batch_size=batch_size)


def rating_counts_recount(*, item_ids: Sequence[int]) -> None:
    """Set the rating counters (`ResponseRatingCount`) of the items' responses to a count of their `Rating`
    rows (submits keep them by increments; this is for ratings stored in bulk, and for checking)."""
    ResponseRatingCount.objects.filter(response__item_id__in=id_list(item_ids)).delete()
    counts = (
        Rating.objects.filter(item_id__in=id_list(item_ids))
        .values("response_id", "level")
        .annotate(n=Count("id"))
        .order_by()
    )
    ResponseRatingCount.objects.bulk_create(
        [ResponseRatingCount(response_id=row["response_id"], level=row["level"], n_ratings=row["n"]) for row in counts],
        batch_size=2000,
    )


@transaction.atomic
def preference_pairs_refresh_project(*, project: Project, batch_size: int = 2000) -> PairsRebuilt:
    """Re-derive every pair of the project (after a change of its rating levels or pair settings)."""
    ids = list(Item.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    return preference_pairs_rebuild_ids(project=project, item_ids=ids, batch_size=batch_size)


# ---------------------------------------------------------------------------------------------------
# AI feedback


def ai_answer_score(p_yes: Sequence[float]) -> float:
    """RLAIF-V's answer score: minus the number of claims the labeler rejects (P(yes) ≤ 0.5)."""
    return -float(sum(1 for p in p_yes if not p > CLAIM_ACCEPT_P_YES))


@transaction.atomic
def ai_feedback_record(
    *,
    response: Response,
    labeler_model: str,
    claims: Sequence[str],
    p_yes: Sequence[float],
    questions: Sequence[str] = (),
    prompt_version: str = "v1",
    score: float | None = None,
    sources: Sequence[str] = (),
    claim_spans: Sequence[Sequence[int] | None] = (),
) -> AIFeedback:
    """Store (or replace) a labeler's verdict on a response and re-derive the item's pairs.

    `p_yes[k]` is the labeler's P(yes) for `questions[k]` about `claims[k]`, `sources[k]` where that verdict
    came from (`logits`, `logprobs` or `parsed`) and `claim_spans[k]` the claim's `[start, end)` in the
    response's text (None where it is not found verbatim); `score` defaults to RLAIF-V's minus the number
    of rejected claims. The same labeler model and prompt version judging the response again replaces its
    earlier verdict, its rewrite included (a new verdict may reject other claims).
    """
    from annotation.labeler.verdicts import SOURCES

    if not labeler_model.strip():
        raise ApplicationError("The AI feedback needs the labeler model's name.", {"field": "labeler_model"})
    if (
        len(p_yes) != len(claims)
        or (questions and len(questions) != len(claims))
        or (sources and len(sources) != len(claims))
        or (claim_spans and len(claim_spans) != len(claims))
    ):
        raise ApplicationError(
            "claims, questions, p_yes, sources and claim_spans must have one entry per claim.",
            {
                "claims": len(claims),
                "questions": len(questions),
                "p_yes": len(p_yes),
                "sources": len(sources),
                "claim_spans": len(claim_spans),
            },
        )
    if any(not (isinstance(p, int | float) and 0.0 <= p <= 1.0) for p in p_yes):
        raise ApplicationError("Every P(yes) must be a probability between 0 and 1.", {"field": "p_yes"})
    unknown = sorted({str(source) for source in sources} - set(SOURCES))
    if unknown:
        raise ApplicationError(
            f"Unknown verdict source(s) {', '.join(unknown)}; each is one of {', '.join(SOURCES)}.",
            {"field": "sources"},
        )
    spans = [_claim_span(span, text=response.text, index=k) for k, span in enumerate(claim_spans)]
    feedback, _ = AIFeedback.objects.update_or_create(
        response=response,
        labeler_model=labeler_model,
        prompt_version=prompt_version,
        defaults={
            "claims": list(claims),
            "questions": list(questions),
            "p_yes": [float(p) for p in p_yes],
            "score": float(score) if score is not None else ai_answer_score(p_yes),
            "sources": [str(source) for source in sources],
            "claim_spans": spans,
            "rewrite": {},
        },
    )
    preference_pairs_refresh(item=Item.objects.select_related("project").get(pk=response.item_id))
    return feedback


def _claim_span(span: Sequence[int] | None, *, text: str, index: int) -> list[int] | None:
    """A claim's span as stored: `[start, end]` inside `text`, or None; ApplicationError naming the claim."""
    if span is None:
        return None
    if (
        not isinstance(span, list | tuple)
        or len(span) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in span)
        or not 0 <= span[0] < span[1] <= len(text)
    ):
        raise ApplicationError(
            f"Claim {index + 1}'s span {span!r} is not a [start, end) span of the answer ({len(text)} characters).",
            {"field": "claim_spans", "claim": index + 1},
        )
    return [span[0], span[1]]


@transaction.atomic
def ai_feedback_rewrite_record(*, feedback: AIFeedback, text: str | None) -> AIFeedback:
    """Keep the labeler's HA-DPO rewrite of the response on its verdict (None or a text that changes only
    whitespace: no rewrite) and re-derive the item's pairs, which include the rewrite pair."""
    original = feedback.response.text
    written = (text or "").strip()
    if written and not pair_rules.same_answer(written, original):
        original_spans, rewrite_spans = pair_rules.changed_spans(original, written)
        feedback.rewrite = {
            "text": written,
            "original_spans": [list(span) for span in original_spans],
            "rewrite_spans": [list(span) for span in rewrite_spans],
        }
    else:
        feedback.rewrite = {}
    feedback.save(update_fields=["rewrite"])
    preference_pairs_refresh(item=Item.objects.select_related("project").get(pk=feedback.response.item_id))
    return feedback
