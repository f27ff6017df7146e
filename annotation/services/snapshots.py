"""Dataset snapshots: immutable, content-hashed files of rows frozen from a project's feedback.

A snapshot is one of three kinds (`SnapshotFilter.kind`):

- `pairs`: preference pairs (`item_key, prompt, image, chosen, rejected, source, margin, agreement,
  n_votes, chosen_spans, rejected_spans, split`), what DPO, DDPO, reward models and most exports read;
- `sft`: SciCap's rows (`item_key, prompt, image, completion, label, score, n_votes, split`), each rated
  response with `[GOOD]` or `[BAD]` before its text, by a threshold on its mean rating (SciCap's: the
  median of the rated responses' means; or a fixed one);
- `ratings`: per rated response the counts of each level (`item_key, prompt, image, text, counts, scale,
  response_key, meta, split`), what the caption-contest tables are written from.

Pairs come from the stored `PreferencePair`s (those of items changed since their last derivation are
re-derived first, `preference_pairs_refresh_stale`: submits do not derive pairs), unless the filter names
annotators or a date range: then only the annotations by those people, made in that range, count, and the
pairs are derived from that subset at snapshot time through the same rules
(`annotation.services.preference_pairs`). Either way the
AI pairs then go through RLAIF-V's length balancing over the whole snapshot (`balance_ai_lengths`): it
compares all pairs at once, so it cannot run when one item's pairs are stored. The content hash covers
the filter and every row: the same filter over the same data gives the same snapshot back.

The train/test split (`SnapshotFilter.split_by`) is stable across runs and machines (a hash of the seed
and a key): by `item` (its external id) no item is on both sides; by `response` (the item's id and the
response's text) no response is, which is what a rating project needs, where one item (a contest's
cartoon) holds thousands of rated captions and a split by item puts all of them on one side. Split by
response, a rating row or SFT row goes with its response, and a pair goes to `test` iff both its answers
do, to `train` iff both do; a pair whose answers fall on different sides is dropped and counted
(`stats["split"]["pairs_across_sides"]`), so no answer is on both sides. `test_fraction` is then the
share of responses held out, so about test_fraction² of the pairs are `test` and 2·f·(1 − f) are dropped
(contest 660's first 2,000 captions at 0.1: 367 train, 5 test, 95 dropped of 467 pairs): ask for a larger
fraction to test on more pairs. The same response falls on the same side in pairs, SFT and ratings
snapshots of one seed. The default is `response` in rating projects
and `item` in the others. A split that leaves a side empty (with `test_fraction` above 0) is kept but
says so in `stats["warnings"]`.

`DatasetSnapshot.stats` records what freezing decided and found: for pairs, per source the number of
pairs and of distinct chosen and rejected answers (an answer is distinct per item: the same words under
two cartoons are two captions) and the length-balancing ratio; for SFT rows the threshold used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import dateparse, timezone

from annotation.formats.common import provenance_of
from annotation.models import (
    AIFeedback,
    DatasetSnapshot,
    GoldAnswer,
    Item,
    PairSource,
    PreferencePair,
    Project,
    ProjectKind,
)
from annotation.pair_rules import is_rewrite_pair, length_balance_keeps, length_balance_ratio
from annotation.selectors_review import feedback_reviewed
from annotation.selectors_trust import annotator_trust, annotators_excluded
from annotation.services.preference_pairs import (
    FeedbackScope,
    ItemFeedback,
    feedback_load,
    pairs_for_items,
    preference_pairs_refresh_stale,
    rating_aggregates,
    rating_median,
    rating_scale,
    sft_rows_for_items,
)
from loupe.errors import ApplicationError

SNAPSHOT_KINDS = ("pairs", "sft", "ratings")
SPLIT_BY = ("item", "response")
# Rows are written with sorted keys (the hash depends on it) by one encoder reused for every row.
_encode_row = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode
AI_ANNOTATOR_PREFIX = "ai:"
_ITEM_BATCH = 500


@dataclass(frozen=True)
class SnapshotFilter:
    """What a snapshot freezes. Everything here goes into the snapshot's hash.

    `annotators` are usernames (`ai:<labeler model>` selects an AI labeler's feedback); `date_from` and
    `date_to` are ISO dates or datetimes, both inclusive (a date alone means the whole day, UTC).
    `sft_threshold` is the mean rating from which a response is `[GOOD]`; None (the default) takes
    SciCap's: the median of the mean ratings of the responses the snapshot holds (`rating_median`).
    `min_agreement` and `min_margin` apply to pairs. `balance_ai_lengths` runs RLAIF-V's length balancing
    over all AI pairs that pass the rest of the filter (other sources are left as they are), so chosen
    answers are not simply the shorter ones. `split_by` is `item` or `response` (module docstring); None
    (the default) takes the project's: `response` for rating projects, else `item`. `ai_rewrite_pairs`
    keeps the AI labeler's HA-DPO rewrite pairs (rewrite chosen, original rejected, changed spans; they are
    AI pairs); None (the default) takes the project's: on in correction projects, where a rewrite is the
    same kind of data the annotators make (a corrected answer with its changed spans), off elsewhere, where
    a pair nobody compared would stand beside pairs that people judged as whole answers. Rewrite pairs are
    not length-balanced: their length change is the correction itself, as in a person's correction.
    """

    sources: tuple[str, ...] = ()
    min_agreement: float = 0.0
    min_margin: float = 0.0
    seed: int = 0
    test_fraction: float = 0.1
    kind: str = "pairs"
    annotators: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None
    sft_threshold: float | None = None
    balance_ai_lengths: bool = True
    split_by: str | None = None
    ai_rewrite_pairs: bool | None = None
    # Only annotations a reviewer accepted or edited (edited: the reviewer's version); no AI feedback or
    # imported aggregate counts, which nobody reviews (`selectors_review.feedback_reviewed`).
    require_accepted: bool = False
    # Gold and trust (`selectors_trust`): leave out the annotations of annotators whose trust is below
    # `min_trust`, and/or of those flagged for straight-lining or answering too fast; AI feedback stays,
    # imported aggregate counts (no annotator) go, as with `annotators`.
    min_trust: float | None = None
    exclude_flagged: bool = False

    def __post_init__(self) -> None:
        if self.split_by not in (None, *SPLIT_BY):
            raise ApplicationError(
                f"split_by must be one of {', '.join(SPLIT_BY)}, not {self.split_by!r}.", {"field": "split_by"}
            )
        if self.kind not in SNAPSHOT_KINDS:
            raise ApplicationError(
                f"Unknown snapshot kind {self.kind!r}; choose one of {', '.join(SNAPSHOT_KINDS)}.", {"field": "kind"}
            )
        unknown = sorted(set(self.sources) - set(PairSource.values))
        if unknown:
            raise ApplicationError(
                f"Unknown pair source(s) {', '.join(unknown)}; choose from {', '.join(PairSource.values)}.",
                {"field": "sources"},
            )
        if self.min_trust is not None and not 0.0 <= self.min_trust <= 1.0:
            raise ApplicationError("min_trust must be between 0 and 1.", {"field": "min_trust"})
        if not 0.0 <= self.test_fraction < 1.0:
            raise ApplicationError("test_fraction must be at least 0 and below 1.", {"field": "test_fraction"})
        start, end = self.bounds()
        if start is not None and end is not None and start > end:
            raise ApplicationError("date_from is after date_to.", {"field": "date_from"})

    def bounds(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The date range as aware datetimes (None where open)."""
        return (
            _parse_when(self.date_from, field_name="date_from", end_of_day=False),
            _parse_when(self.date_to, field_name="date_to", end_of_day=True),
        )

    @property
    def derives_from_annotations(self) -> bool:
        """Whether the rows must be derived from a subset of annotations rather than the stored pairs."""
        return (
            bool(self.annotators) or self.date_from is not None or self.date_to is not None or self.require_accepted
        ) or (self.min_trust is not None or self.exclude_flagged)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "sources": sorted(self.sources),
            "min_agreement": self.min_agreement,
            "min_margin": self.min_margin,
            "annotators": sorted(self.annotators),
            "date_from": self.date_from,
            "date_to": self.date_to,
            "sft_threshold": self.sft_threshold,
            "balance_ai_lengths": self.balance_ai_lengths,
            "seed": self.seed,
            "test_fraction": self.test_fraction,
            "split_by": self.split_by,
            "ai_rewrite_pairs": self.ai_rewrite_pairs,
            # Only when set, so the hashes of snapshots made before the option stay as they were.
            **({"require_accepted": True} if self.require_accepted else {}),
            **({"min_trust": self.min_trust} if self.min_trust is not None else {}),
            **({"exclude_flagged": True} if self.exclude_flagged else {}),
        }


def _parse_when(value: str | None, *, field_name: str, end_of_day: bool) -> dt.datetime | None:
    if value in (None, ""):
        return None
    parsed = dateparse.parse_datetime(value)
    if parsed is None:
        day = dateparse.parse_date(value)
        if day is None:
            raise ApplicationError(
                f"{field_name} must be an ISO date or datetime, not {value!r}.", {"field": field_name}
            )
        parsed = dt.datetime.combine(day, dt.time.max if end_of_day else dt.time.min)
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _split_of(*, key: str, seed: int, test_fraction: float) -> str:
    """'test' or 'train' for an item's or a response's key, stable across runs and machines."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def _response_key(item_key: str, text: str) -> str:
    return f"{item_key}\x1f{text}"


def _answers_of(row: dict[str, Any], kind: str) -> tuple[str, ...]:
    """The texts of the responses a row holds: a pair's two answers, a rating row's or SFT row's one."""
    if kind == "pairs":
        return (row["chosen"], row["rejected"])
    if kind == "ratings":
        return (row["text"],)
    # An SFT completion is its response's text behind the [GOOD]/[BAD] token.
    return (row["completion"].partition(" ")[2] if row["label"] else row["completion"],)


def split_by_default(project: Project) -> str:
    """How a project's snapshots split unless the filter says: by response in rating projects."""
    return "response" if project.kind == ProjectKind.RATING else "item"


def _named_scope(snapshot_filter: SnapshotFilter) -> FeedbackScope:
    start, end = snapshot_filter.bounds()
    if not snapshot_filter.annotators:
        return FeedbackScope(created_from=start, created_to=end)
    people = [name for name in snapshot_filter.annotators if not name.startswith(AI_ANNOTATOR_PREFIX)]
    labelers = frozenset(n[len(AI_ANNOTATOR_PREFIX) :] for n in snapshot_filter.annotators if n not in people)
    found = dict(get_user_model().objects.filter(username__in=people).values_list("username", "pk"))
    missing = sorted(set(people) - set(found))
    if missing:
        raise ApplicationError(f"No annotator named {', '.join(missing)}.", {"field": "annotators"})
    return FeedbackScope(annotators=frozenset(found.values()), ai_labelers=labelers, created_from=start, created_to=end)


def _scope_of(snapshot_filter: SnapshotFilter, *, project: Project) -> FeedbackScope:
    """The annotators and dates the filter names, less the untrusted or flagged annotators it leaves out."""
    scope = _named_scope(snapshot_filter)
    if snapshot_filter.min_trust is None and not snapshot_filter.exclude_flagged:
        return scope
    rows = annotator_trust(project=project)
    left_out = annotators_excluded(
        rows=rows, min_trust=snapshot_filter.min_trust, exclude_flagged=snapshot_filter.exclude_flagged
    )
    people = {row.annotator_id for row in rows} - left_out
    if scope.annotators is not None:
        return replace(scope, annotators=frozenset(people & scope.annotators))
    # No annotators named: every AI labeler's feedback still counts (trust is about people).
    labelers = AIFeedback.objects.filter(response__project=project).values_list("labeler_model", flat=True)
    return replace(scope, annotators=frozenset(people), ai_labelers=frozenset(labelers.distinct()))


def _feedback(*, items: list[Item], scope: FeedbackScope, snapshot_filter: SnapshotFilter) -> list[ItemFeedback]:
    """The items' feedback in the scope, edited annotations in their reviewer's version; only accepted and
    edited ones when the filter requires it (`SnapshotFilter.require_accepted`)."""
    return feedback_reviewed(feedback_load(items=items, scope=scope), accepted_only=snapshot_filter.require_accepted)


def _imported_counts(scope: FeedbackScope, snapshot_filter: SnapshotFilter) -> bool:
    """Whether imported aggregate rating counts count: they have no annotator, and nobody reviewed them."""
    return scope.annotators is None and not snapshot_filter.require_accepted


def _items_in_key_order(project: Project) -> Iterator[list[Item]]:
    # Items holding a gold task measure annotators; they train nothing.
    gold = GoldAnswer.objects.filter(item=OuterRef("pk"))
    ids = list(
        Item.objects.filter(project=project).filter(~Exists(gold)).order_by("external_id").values_list("id", flat=True)
    )
    for start in range(0, len(ids), _ITEM_BATCH):
        chunk = ids[start : start + _ITEM_BATCH]
        by_id = Item.objects.select_related("project").in_bulk(chunk)
        yield [by_id[i] for i in chunk]


def _pair_row(
    key: str, prompt: str, image: str, source: str, chosen: str, rejected: str, margin: float, agreement: float,
    n_votes: int, chosen_spans: list, rejected_spans: list, item_meta: dict | None = None,
) -> dict[str, Any]:  # fmt: skip
    row = {
        "item_key": key,
        "prompt": prompt,
        "image": image,
        "chosen": chosen,
        "rejected": rejected,
        "source": source,
        "margin": margin,
        "agreement": agreement,
        "n_votes": n_votes,
        "chosen_spans": chosen_spans,
        "rejected_spans": rejected_spans,
    }
    # An imported release's own fields (RLHF-V/RLAIF-V `ds_name`, `idx`, ...), frozen with the pair so the
    # release exports write them back; only rows of such items carry the key.
    provenance = provenance_of(item_meta)
    if provenance:
        row["provenance"] = provenance
    return row


def _stored_pair_rows(*, project: Project, snapshot_filter: SnapshotFilter) -> Iterator[dict[str, Any]]:
    pairs = PreferencePair.objects.filter(
        project=project, agreement__gte=snapshot_filter.min_agreement, margin__gte=snapshot_filter.min_margin
    )
    if snapshot_filter.sources:
        pairs = pairs.filter(source__in=snapshot_filter.sources)
    pairs = pairs.filter(~Exists(GoldAnswer.objects.filter(item_id=OuterRef("item_id"))))  # gold trains nothing
    if not snapshot_filter.ai_rewrite_pairs:
        # A rewrite pair's chosen side is the labeler's text, not a stored response.
        pairs = pairs.exclude(source=PairSource.AI, chosen_response__isnull=True)
    # Content columns first and the id last: rows equal in content may come in either order.
    pairs = pairs.order_by(
        "item__external_id", "source", "chosen_text", "rejected_text", "margin", "agreement", "n_votes", "id"
    ).values_list(
        "item__external_id",
        "item__prompt",
        "item__image",
        "source",
        "chosen_text",
        "rejected_text",
        "margin",
        "agreement",
        "n_votes",
        "chosen_spans",
        "rejected_spans",
        "item__meta",
    )
    for values in pairs.iterator(chunk_size=5000):
        yield _pair_row(*values)


def _derived_pair_rows(*, project: Project, snapshot_filter: SnapshotFilter) -> Iterator[dict[str, Any]]:
    scope = _scope_of(snapshot_filter, project=project)
    scale = rating_scale(project)
    for items in _items_in_key_order(project):
        by_item: dict[str, list[dict[str, Any]]] = {}
        metas = {item.external_id: item.meta for item in items}
        for derived in pairs_for_items(
            _feedback(items=items, scope=scope, snapshot_filter=snapshot_filter),
            scale=scale,
            sources=snapshot_filter.sources or None,
            imported_counts=_imported_counts(scope, snapshot_filter),
        ):
            row = derived.row
            # The same normalization as stored pairs, so both paths filter and write alike.
            margin = row.margin if row.margin is not None else 1.0
            agreement = row.agreement if row.agreement is not None else 1.0
            if margin < snapshot_filter.min_margin or agreement < snapshot_filter.min_agreement:
                continue
            if not snapshot_filter.ai_rewrite_pairs and is_rewrite_pair(row):
                continue
            by_item.setdefault(row.item_key, []).append(
                _pair_row(
                    row.item_key,
                    row.prompt,
                    row.image or "",
                    row.source,
                    row.chosen,
                    row.rejected,
                    margin,
                    agreement,
                    row.n_votes,
                    [list(s) for s in row.chosen_spans],
                    [list(s) for s in row.rejected_spans],
                    metas.get(row.item_key),
                )  # fmt: skip
            )
        for item in items:
            rows = by_item.get(item.external_id, [])
            rows.sort(key=lambda r: (r["source"], r["chosen"], r["rejected"], r["margin"], r["agreement"]))
            yield from rows


def _sft_threshold(*, project: Project, snapshot_filter: SnapshotFilter, scope: FeedbackScope) -> float:
    """The filter's fixed threshold, else the median mean rating of the responses the snapshot will hold."""
    if snapshot_filter.sft_threshold is not None:
        return snapshot_filter.sft_threshold
    scale = rating_scale(project)
    feedback = (
        entry
        for items in _items_in_key_order(project)
        for entry in _feedback(items=items, scope=scope, snapshot_filter=snapshot_filter)
    )
    try:
        return rating_median(feedback, scale=scale, imported_counts=_imported_counts(scope, snapshot_filter))
    except ValueError:
        raise ApplicationError("No rated responses pass this filter; nothing to freeze.") from None


def _sft_rows(*, project: Project, snapshot_filter: SnapshotFilter, stats: dict[str, Any]) -> Iterator[dict[str, Any]]:
    scope = _scope_of(snapshot_filter, project=project)
    scale = rating_scale(project)
    threshold = _sft_threshold(project=project, snapshot_filter=snapshot_filter, scope=scope)
    stats["sft_threshold"] = {
        "value": threshold,
        "rule": "median" if snapshot_filter.sft_threshold is None else "fixed",
    }
    for items in _items_in_key_order(project):
        feedback = _feedback(items=items, scope=scope, snapshot_filter=snapshot_filter)
        for row in sft_rows_for_items(
            feedback, scale=scale, threshold=threshold, imported_counts=_imported_counts(scope, snapshot_filter)
        ):
            yield {
                "item_key": row.item_key,
                "prompt": row.prompt,
                "image": row.image or "",
                "completion": row.completion,
                "label": row.label,
                "score": row.score,
                "n_votes": row.n_votes,
            }


def _rating_rows(*, project: Project, snapshot_filter: SnapshotFilter) -> Iterator[dict[str, Any]]:
    scope = _scope_of(snapshot_filter, project=project)
    scale = rating_scale(project)
    for items in _items_in_key_order(project):
        for entry in _feedback(items=items, scope=scope, snapshot_filter=snapshot_filter):
            positions = {pk: response.position for pk, response in entry.responses.items()}
            for aggregate in rating_aggregates(
                entry, scale=scale, imported_counts=_imported_counts(scope, snapshot_filter)
            ):
                pk = int(aggregate.response_key)
                yield {
                    "item_key": aggregate.item_key,
                    "prompt": aggregate.prompt,
                    "image": aggregate.image or "",
                    "text": aggregate.text,
                    "counts": aggregate.counts,
                    "scale": list(scale),
                    # A caption keeps the id its contest gave it; others are named by their position.
                    "response_key": str(aggregate.meta.get("target_id", positions[pk])),
                    "meta": aggregate.meta,
                }


def _pair_rows(*, project: Project, snapshot_filter: SnapshotFilter) -> Iterator[dict[str, Any]]:
    if snapshot_filter.derives_from_annotations:
        return _derived_pair_rows(project=project, snapshot_filter=snapshot_filter)
    return _stored_pair_rows(project=project, snapshot_filter=snapshot_filter)


def _length_balanced(
    rows: Iterable[dict[str, Any]], *, project: Project, snapshot_filter: SnapshotFilter, stats: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """`rows` with the AI pairs that RLAIF-V's length balancing drops left out, the balancing taken over
    every AI score pair of the snapshot (rewrite pairs are neither counted nor dropped: see
    `SnapshotFilter`): a first pass reads only their lengths, so memory stays small."""
    if not snapshot_filter.balance_ai_lengths or (
        snapshot_filter.sources and PairSource.AI not in snapshot_filter.sources
    ):
        yield from rows
        return
    only_ai = replace(snapshot_filter, sources=(PairSource.AI.value,))
    ai_rows = _pair_rows(project=project, snapshot_filter=only_ai)
    ratio = length_balance_ratio((row["chosen"], row["rejected"]) for row in ai_rows if not is_rewrite_pair(row))
    if ratio is not None:  # None: the snapshot has no AI score pairs
        stats["ai_length_balance_ratio"] = ratio
    for row in rows:
        if (
            row["source"] != PairSource.AI
            or is_rewrite_pair(row)
            or length_balance_keeps(row["chosen"], row["rejected"], ratio)
        ):
            yield row


class _PairStats:
    """Per source: pairs, and distinct chosen and rejected answers counted per item (rows come grouped
    by item, so only the current item's answers are held)."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        self._item: str | None = None
        self._seen: set[tuple[str, str, str]] = set()

    def add(self, row: dict[str, Any]) -> None:
        if row["item_key"] != self._item:
            self._item, self._seen = row["item_key"], set()
        counts = self.counts.setdefault(row["source"], {"pairs": 0, "distinct_chosen": 0, "distinct_rejected": 0})
        counts["pairs"] += 1
        for side in ("chosen", "rejected"):
            key = (row["source"], side, row[side])
            if key not in self._seen:
                self._seen.add(key)
                counts[f"distinct_{side}"] += 1


def _snapshot_rows(
    *, project: Project, snapshot_filter: SnapshotFilter, stats: dict[str, Any]
) -> Iterable[dict[str, Any]]:
    """The snapshot's rows, each with its split; what freezing decides or finds goes into `stats`."""
    pair_stats = None
    if snapshot_filter.kind == "sft":
        rows: Iterable[dict[str, Any]] = _sft_rows(project=project, snapshot_filter=snapshot_filter, stats=stats)
    elif snapshot_filter.kind == "ratings":
        rows = _rating_rows(project=project, snapshot_filter=snapshot_filter)
    else:
        rows = _length_balanced(
            _pair_rows(project=project, snapshot_filter=snapshot_filter),
            project=project,
            snapshot_filter=snapshot_filter,
            stats=stats,
        )
        pair_stats = _PairStats()
        stats["pair_stats"] = pair_stats.counts
    seed, fraction = snapshot_filter.seed, snapshot_filter.test_fraction
    split_stats = {"by": snapshot_filter.split_by, "train": 0, "test": 0}
    if snapshot_filter.split_by == "response" and snapshot_filter.kind == "pairs":
        split_stats["pairs_across_sides"] = 0
    stats["split"] = split_stats
    splits: dict[str, str] = {}
    for row in rows:
        key = row["item_key"]
        if snapshot_filter.split_by == "item":
            if key not in splits:
                # Rows come grouped by item, so only the current item's side needs remembering.
                splits = {key: _split_of(key=key, seed=seed, test_fraction=fraction)}
            split = splits[key]
        else:
            sides = {
                _split_of(key=_response_key(key, text), seed=seed, test_fraction=fraction)
                for text in _answers_of(row, snapshot_filter.kind)
            }
            if len(sides) > 1:
                split_stats["pairs_across_sides"] += 1
                continue
            (split,) = sides
        row["split"] = split
        split_stats[split] += 1
        if pair_stats is not None:
            pair_stats.add(row)
            if is_rewrite_pair(row):
                stats["ai_rewrite_pairs"] = stats.get("ai_rewrite_pairs", 0) + 1
        yield row
    empty = [side for side in ("train", "test") if split_stats[side] == 0]
    if fraction > 0 and empty and split_stats["train"] + split_stats["test"]:
        stats.setdefault("warnings", []).append(
            f"The {' and '.join(empty)} side of the split is empty: split by {snapshot_filter.split_by} with "
            f"test_fraction {fraction}, every row fell on one side"
            + (
                " (few items, each with many rows: split by response instead)."
                if snapshot_filter.split_by == "item"
                else "."
            )
        )


def snapshot_kind(snapshot: DatasetSnapshot) -> str:
    """`pairs`, `sft` or `ratings` (snapshots made before kinds existed hold pairs)."""
    return (snapshot.filters or {}).get("kind", "pairs")


def snapshot_create(
    *, project: Project, created_by: AbstractBaseUser | None, snapshot_filter: SnapshotFilter | None = None
) -> DatasetSnapshot:
    """Freeze the project's rows that pass the filter into an immutable, content-hashed file.

    The rows stream from the database to the file (constant memory); the hash covers the filter and
    every row, so freezing the same data with the same filter twice gives the same snapshot back rather
    than a second copy. `DatasetSnapshot.stats` records what freezing found (see the module docstring).
    """
    snapshot_filter = snapshot_filter or SnapshotFilter()
    if snapshot_filter.split_by is None:
        snapshot_filter = replace(snapshot_filter, split_by=split_by_default(project))
    if snapshot_filter.ai_rewrite_pairs is None:
        snapshot_filter = replace(snapshot_filter, ai_rewrite_pairs=project.kind == ProjectKind.CORRECTION)
    # Submits only mark their items stale; the pairs of every annotation acknowledged so far are derived
    # now, before the stored pairs are read (a no-op read of a partial index when nothing changed).
    preference_pairs_refresh_stale(project=project)
    snapshots_dir = Path(settings.SNAPSHOTS_DIR)
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(json.dumps(snapshot_filter.as_dict(), sort_keys=True).encode())
    counts = {"train": 0, "test": 0}
    stats: dict[str, Any] = {}
    with tempfile.NamedTemporaryFile("wb", dir=snapshots_dir, suffix=".partial", delete=False) as handle:
        try:
            for row in _snapshot_rows(project=project, snapshot_filter=snapshot_filter, stats=stats):
                line = _encode_row(row).encode() + b"\n"
                digest.update(line)
                handle.write(line)
                counts[row["split"]] += 1
        except BaseException:
            handle.close()
            os.unlink(handle.name)
            raise
    content_hash = digest.hexdigest()
    if counts["train"] + counts["test"] == 0:
        os.unlink(handle.name)
        what = {"pairs": "preference pairs", "sft": "rated responses", "ratings": "rated responses"}
        raise ApplicationError(f"No {what[snapshot_filter.kind]} pass this filter; nothing to freeze.")
    target = snapshots_dir / f"{content_hash}.jsonl"
    os.replace(handle.name, target)
    with transaction.atomic():
        snapshot, _ = DatasetSnapshot.objects.get_or_create(
            project=project,
            content_hash=content_hash,
            defaults={
                "filters": snapshot_filter.as_dict(),
                "stats": stats,
                "n_rows": counts["train"] + counts["test"],
                "n_train": counts["train"],
                "n_test": counts["test"],
                "path": str(target),
                "created_by": created_by,
            },
        )
    return snapshot
