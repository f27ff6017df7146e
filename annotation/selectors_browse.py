"""Reads for the data browser: a project's items with their answers, every annotation of them, the AI
labeler's verdicts and the preference pairs they produced, filtered, searched, sorted and paged on the
server, and one item with everything said about it (the task page).

Paging is by keyset (`after` / `before` cursors over the sort's indexed columns), so a page deep in a million
items costs what the first one does; the number of matches is counted only up to `COUNT_CAP`
(`FILTERED_COUNT_CAP` when filtered). A page's answers, annotations, reviews, verdicts and pair counts are read
in a fixed number of queries whatever its size.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from annotation.models import (
    AIFeedback,
    AISuggestionUse,
    AnnotationReview,
    Correction,
    Item,
    Membership,
    PairwiseChoice,
    PairwiseJudgment,
    PreferencePair,
    Project,
    ProjectKind,
    Ranking,
    Rating,
    Response,
)
from annotation.models import annotation_model_for as annotation_model
from annotation.models import unit_model_for as unit_model
from loupe.errors import ApplicationError

PAGE_SIZE = 25
MAX_PAGE_SIZE = 200
# Matches are counted up to here ("more than 1000 items"): a count over a million rows per page would cost
# more than the page itself. Filtered listings stop sooner: each match there costs the filters' subqueries,
# and a count to 1000 took ten times the page's own query (bench/browse_pages.py, "disagree" at 100k items).
COUNT_CAP = 1000
FILTERED_COUNT_CAP = 200
EXCERPT_CHARS = 160

# Sort name → (columns of the keyset, descending). Every key ends in a column unique within the project,
# and each leads an index that starts with the project: item_external_id_unique, item_done_idx, the primary key.
SORTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "id": (("id",), False),
    "-id": (("id",), True),
    "external_id": (("external_id",), False),
    "-external_id": (("external_id",), True),
    "annotations": (("done_count", "id"), False),
    "-annotations": (("done_count", "id"), True),
}
SORT_LABELS = {
    "id": "import order",
    "-id": "newest first",
    "external_id": "external id",
    "-external_id": "external id, descending",
    "annotations": "fewest annotations first",
    "-annotations": "most annotations first",
}
STATUSES = {"open": "still needs annotations", "done": "finished (every task has its annotators)"}
FEEDBACK = {
    "human": "has human annotations",
    "no_human": "has no human annotation",
    "ai": "has AI feedback",
    "no_ai": "has no AI feedback",
    "correction": "has a correction marking a hallucination",
    "pairs": "produced preference pairs",
}
AGREEMENT = {
    "disagree": "annotators disagree",
    "agree": "two or more annotators, all agreeing",
}


@dataclass(frozen=True)
class BrowseFilters:
    """What the browser shows. `annotator_id` and the dates select items with an annotation by that
    annotator made on those days (both at once: the same annotation)."""

    annotator_id: int | None = None
    status: str = ""
    feedback: tuple[str, ...] = ()
    agreement: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    search: str = ""
    sort: str = "id"


@dataclass
class BrowsePage:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    previous_cursor: str | None
    # Matches up to COUNT_CAP; `matches_capped` when there are more.
    matches: int
    matches_capped: bool


# ------------------------------------------------------------------------------------------------ filters


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _disagreement(project: Project) -> Q:
    """Items on which two annotators gave different verdicts on the same task.

    Pairwise: a different preferred answer (A/B resolved to the response shown there, since sides are
    shuffled per annotator), or tie / both bad against a preference. Correction: one annotator marked a
    hallucination in an answer and another marked none. Rating: one answer rated at different levels.
    Ranking: different orders of the item's answers."""
    item = OuterRef("pk")
    if project.kind == ProjectKind.PAIRWISE:
        others = PairwiseJudgment.objects.filter(item_id=OuterRef("item_id")).exclude(pk=OuterRef("pk"))

        def prefers_other_than(column: str) -> Q:
            # Another judgment whose preferred answer is not the outer judgment's `column`, or that has none.
            return (
                Q(choice=PairwiseChoice.A) & ~Q(response_a_id=OuterRef(column))
                | Q(choice=PairwiseChoice.B) & ~Q(response_b_id=OuterRef(column))
                | Q(choice__in=[PairwiseChoice.TIE, PairwiseChoice.BOTH_BAD])
            )

        judgments = PairwiseJudgment.objects.filter(item_id=item)
        a_against = judgments.filter(choice=PairwiseChoice.A).filter(
            Exists(others.filter(prefers_other_than("response_a_id")))
        )
        b_against = judgments.filter(choice=PairwiseChoice.B).filter(
            Exists(others.filter(prefers_other_than("response_b_id")))
        )
        # Tie against anything else; "both bad" against a preference is found from the preference's side.
        tie_against = judgments.filter(choice=PairwiseChoice.TIE).filter(
            Exists(others.exclude(choice=PairwiseChoice.TIE))
        )
        return Q(Exists(a_against)) | Q(Exists(b_against)) | Q(Exists(tie_against))
    if project.kind == ProjectKind.CORRECTION:
        marked_elsewhere = Correction.objects.filter(response_id=OuterRef("response_id")).exclude(segments=[])
        return Q(Exists(Correction.objects.filter(item_id=item, segments=[]).filter(Exists(marked_elsewhere))))
    if project.kind == ProjectKind.RATING:
        other_level = Rating.objects.filter(response_id=OuterRef("response_id")).exclude(level=OuterRef("level"))
        return Q(Exists(Rating.objects.filter(item_id=item).filter(Exists(other_level))))
    other_order = Ranking.objects.filter(item_id=OuterRef("item_id")).exclude(order=OuterRef("order"))
    return Q(Exists(Ranking.objects.filter(item_id=item).filter(Exists(other_order))))


def _two_on_one_task(project: Project) -> Exists:
    """Items where two annotators answered the same task (an item, or one of its answers)."""
    model = annotation_model(project)
    same_task = "item_id" if project.kind in (ProjectKind.PAIRWISE, ProjectKind.RANKING) else "response_id"
    second = model.objects.filter(**{same_task: OuterRef(same_task)}).exclude(annotator_id=OuterRef("annotator_id"))
    return Exists(model.objects.filter(item_id=OuterRef("pk")).filter(Exists(second)))


def browse_items(*, project: Project, filters: BrowseFilters) -> QuerySet[Item]:
    """The project's items that pass `filters`, unordered."""
    items = Item.objects.filter(project=project)
    annotations = annotation_model(project).objects.filter(item_id=OuterRef("pk"))
    if filters.annotator_id is not None or filters.date_from is not None or filters.date_to is not None:
        chosen = annotations
        if filters.annotator_id is not None:
            chosen = chosen.filter(annotator_id=filters.annotator_id)
        if filters.date_from is not None:
            chosen = chosen.filter(created_at__gte=_day_start(filters.date_from))
        if filters.date_to is not None:
            chosen = chosen.filter(created_at__lt=_day_start(filters.date_to + dt.timedelta(days=1)))
        items = items.filter(Exists(chosen))
    if filters.status:
        if unit_model(project) is Item:
            finished = Q(done_count__gte=project.overlap)
        else:  # one-answer kinds: an item is finished when each of its answers is
            finished = ~Exists(Response.objects.filter(item_id=OuterRef("pk"), done_count__lt=project.overlap))
        items = items.filter(finished if filters.status == "done" else ~finished)
    ai = Exists(AIFeedback.objects.filter(response__item_id=OuterRef("pk")))
    for wanted in filters.feedback:
        items = items.filter(
            {
                "human": Exists(annotations),
                "no_human": ~Exists(annotations),
                "ai": ai,
                "no_ai": ~ai,
                "correction": Exists(Correction.objects.filter(item_id=OuterRef("pk")).exclude(segments=[])),
                "pairs": Exists(PreferencePair.objects.filter(item_id=OuterRef("pk"))),
            }[wanted]
        )
    if filters.agreement == "disagree":
        items = items.filter(_disagreement(project))
    elif filters.agreement == "agree":
        items = items.filter(_two_on_one_task(project)).exclude(_disagreement(project))
    if filters.search:
        text = filters.search
        items = items.filter(
            Q(prompt__icontains=text)
            | Q(external_id__icontains=text)
            | Exists(Response.objects.filter(item_id=OuterRef("pk"), text__icontains=text))
        )
    return items


# ------------------------------------------------------------------------------------------------ cursors


def cursor_encode(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values), separators=(",", ":")).encode()).decode().rstrip("=")


def cursor_decode(cursor: str, *, sort: str, field_name: str) -> list[Any]:
    """The key values a cursor carries, checked against the sort's columns (a 400 naming the field if not)."""
    columns, _ = SORTS[sort]
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        values = None
    expected = [str if column == "external_id" else int for column in columns]
    if (
        not isinstance(values, list)
        or len(values) != len(columns)
        or not all(type(value) is kind for value, kind in zip(values, expected, strict=True))
        or any(kind is int and not 0 <= value < 2**63 for value, kind in zip(values, expected, strict=True))
    ):
        raise ApplicationError(
            f"{field_name}: not a cursor of this listing (sorted by {sort}); follow the page links.",
            {"field": field_name},
        )
    return values


def _after(columns: Sequence[str], values: Sequence[Any], *, descending: bool) -> Q:
    """Rows strictly after `values` in the order of `columns` (the keyset condition)."""
    beyond = "lt" if descending else "gt"
    condition = Q()
    for k, column in enumerate(columns):
        step = Q(**{f"{column}__{beyond}": values[k]})
        for earlier, value in zip(columns[:k], values[:k], strict=True):
            step &= Q(**{earlier: value})
        condition |= step
    if len(columns) > 1:  # the same rows, with a range on the leading column that an index can seek to
        condition &= Q(**{f"{columns[0]}__{beyond}e": values[0]})
    return condition


def _key(item: Item, columns: Sequence[str]) -> list[Any]:
    return [getattr(item, column) for column in columns]


def browse_page(
    *,
    project: Project,
    filters: BrowseFilters,
    after: str | None = None,
    before: str | None = None,
    limit: int = PAGE_SIZE,
) -> BrowsePage:
    """One page of matching items, sorted by `filters.sort`, after (or before) a cursor, with their details."""
    columns, descending = SORTS[filters.sort]
    matching = browse_items(project=project, filters=filters)
    backwards = before is not None and after is None
    page = matching
    if after is not None:
        page = page.filter(
            _after(columns, cursor_decode(after, sort=filters.sort, field_name="after"), descending=descending)
        )
    elif backwards:
        values = cursor_decode(before, sort=filters.sort, field_name="before")
        page = page.filter(_after(columns, values, descending=not descending))
    flip = descending != backwards
    page = page.order_by(*(f"-{column}" if flip else column for column in columns))
    items = list(page[: limit + 1])
    more = len(items) > limit
    items = items[:limit]
    if backwards:
        items.reverse()
        has_previous, has_next = more, True
    else:
        has_previous, has_next = after is not None, more
    first_page = after is None and before is None
    # A first page that holds every match has counted them already.
    done_counting = first_page and not more
    cap = COUNT_CAP if filters == BrowseFilters(sort=filters.sort) else FILTERED_COUNT_CAP
    matches = len(items) if done_counting else matching.values("pk")[: cap + 1].count()
    return BrowsePage(
        rows=browse_rows(project=project, items=items),
        next_cursor=cursor_encode(_key(items[-1], columns)) if items and has_next else None,
        previous_cursor=cursor_encode(_key(items[0], columns)) if items and has_previous else None,
        matches=min(matches, cap),
        matches_capped=matches > cap,
    )


def browse_members(*, project: Project) -> list[str]:
    """Usernames of the project's members (the annotator filter's suggestions)."""
    return sorted(
        Membership.objects.filter(project=project).values_list(f"user__{get_user_model().USERNAME_FIELD}", flat=True)
    )


# ------------------------------------------------------------------------------------------------ rows


def excerpt(text: str, chars: int = EXCERPT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"


def answer_label(position: int) -> str:
    return f"Answer {position + 1}"


def correction_diff(text: str, segments: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """The answer as runs of kept text, struck text (`del`, with its type) and replacements (`ins`)."""
    parts: list[dict[str, str]] = []
    at = 0
    for segment in sorted(segments, key=lambda s: int(s.get("start", 0))):
        start, end = int(segment.get("start", 0)), int(segment.get("end", 0))
        if start < at or end > len(text) or end <= start:
            continue  # a stored segment that no longer fits the text: show the rest as it is
        if start > at:
            parts.append({"op": "same", "text": text[at:start], "type": ""})
        parts.append({"op": "del", "text": text[start:end], "type": str(segment.get("type", ""))})
        if segment.get("replacement"):
            parts.append({"op": "ins", "text": str(segment["replacement"]), "type": str(segment.get("type", ""))})
        at = end
    if at < len(text):
        parts.append({"op": "same", "text": text[at:], "type": ""})
    return parts


def _annotation_row(annotation: Any, *, kind: str, responses: dict[int, Response], project: Project) -> dict[str, Any]:
    """One annotation as the browser shows it: who, when, and what they said in words."""
    row: dict[str, Any] = {
        "id": annotation.pk,
        "kind": kind,
        "annotator": annotation.annotator.get_username(),
        "created_at": annotation.created_at,
        "updated_at": annotation.updated_at,
        "time_spent_ms": annotation.time_spent_ms,
        "response_id": None,
        "summary": "",
        "reason": "",
        "diff": [],
        "segments": [],
    }
    label = lambda pk: answer_label(responses[pk].position) if pk in responses else f"answer {pk}"  # noqa: E731
    if kind == ProjectKind.PAIRWISE:
        a, b = label(annotation.response_a_id), label(annotation.response_b_id)
        strength = "clearly" if annotation.strength >= 2 else "slightly"
        row["summary"] = {
            PairwiseChoice.A: f"{a} {strength} better than {b}",
            PairwiseChoice.B: f"{b} {strength} better than {a}",
            PairwiseChoice.TIE: f"tie between {a} and {b}",
            PairwiseChoice.BOTH_BAD: f"both bad ({a}, {b})",
        }.get(annotation.choice, annotation.choice)
        row["reason"] = annotation.reason
        row["choice"] = annotation.choice
        row["preferred_response_id"] = {
            PairwiseChoice.A: annotation.response_a_id,
            PairwiseChoice.B: annotation.response_b_id,
        }.get(annotation.choice)
    elif kind == ProjectKind.CORRECTION:
        response = responses.get(annotation.response_id)
        row["response_id"] = annotation.response_id
        row["segments"] = list(annotation.segments or [])
        n = len(row["segments"])
        row["summary"] = (
            f"{label(annotation.response_id)}: no hallucination"
            if not n
            else f"{label(annotation.response_id)}: {n} hallucinated span{'s' if n != 1 else ''} corrected"
        )
        row["diff"] = correction_diff(response.text, row["segments"]) if response is not None and n else []
        row["corrected_text"] = annotation.corrected_text
    elif kind == ProjectKind.RATING:
        levels = list(project.rating_levels or [])
        level_name = levels[annotation.level] if 0 <= annotation.level < len(levels) else f"level {annotation.level}"
        row["response_id"] = annotation.response_id
        row["level"] = annotation.level
        row["summary"] = f"{label(annotation.response_id)}: {level_name}"
    else:
        order = [pk for pk in annotation.order or [] if isinstance(pk, int)]
        row["order"] = order
        row["summary"] = " > ".join(label(pk) for pk in order)
    return row


def _verdict(annotation_row: dict[str, Any]) -> Any:
    """What two annotators must share to agree (see `_disagreement`)."""
    kind = annotation_row["kind"]
    if kind == ProjectKind.PAIRWISE:
        return annotation_row["preferred_response_id"] or annotation_row["choice"]
    if kind == ProjectKind.CORRECTION:
        return bool(annotation_row["segments"])
    if kind == ProjectKind.RATING:
        return annotation_row["level"]
    return tuple(annotation_row["order"])


def _agreement_of(annotation_rows: list[dict[str, Any]]) -> str:
    """ "disagree", "agree" (two or more on one task, all the same) or "" (nothing to compare)."""
    by_task: dict[Any, set[Any]] = defaultdict(set)
    counts: dict[Any, int] = defaultdict(int)
    for row in annotation_rows:
        task = row["response_id"] if row["kind"] in (ProjectKind.CORRECTION, ProjectKind.RATING) else "item"
        by_task[task].add(_verdict(row))
        counts[task] += 1
    if any(len(verdicts) > 1 for verdicts in by_task.values()):
        return "disagree"
    return "agree" if any(n > 1 for n in counts.values()) else ""


def _ai_row(feedback: AIFeedback) -> dict[str, Any]:
    p_yes = list(feedback.p_yes or [])
    return {
        "id": feedback.pk,
        "response_id": feedback.response_id,
        "labeler_model": feedback.labeler_model,
        "prompt_version": feedback.prompt_version,
        "score": feedback.score,
        "claims": [
            {"claim": str(claim), "p_yes": p_yes[k] if k < len(p_yes) else None}
            for k, claim in enumerate(feedback.claims or [])
        ],
        "rewrite": str((feedback.rewrite or {}).get("text") or ""),
        "created_at": feedback.created_at,
    }


def browse_rows(*, project: Project, items: Sequence[Item]) -> list[dict[str, Any]]:
    """Each item with its answers (and the AI labeler's verdicts on them), its annotations with their
    reviews, whether its annotators agree, and how many preference pairs it produced: five queries for any
    number of items."""
    ids = [item.pk for item in items]
    if not ids:
        return []
    responses_by_item: dict[int, list[Response]] = defaultdict(list)
    responses: dict[int, Response] = {}
    for response in Response.objects.filter(item_id__in=ids).order_by("item_id", "position"):
        responses_by_item[response.item_id].append(response)
        responses[response.pk] = response
    annotations_by_item: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for annotation in (
        annotation_model(project)
        .objects.filter(item_id__in=ids)
        .select_related("annotator")
        .order_by("created_at", "pk")
    ):
        annotations_by_item[annotation.item_id].append(
            _annotation_row(annotation, kind=project.kind, responses=responses, project=project)
        )
    reviews = {
        review.annotation_id: review
        for review in AnnotationReview.objects.filter(
            kind=project.kind,
            annotation_id__in=[note["id"] for notes in annotations_by_item.values() for note in notes],
        ).select_related("reviewer")
    }
    for notes in annotations_by_item.values():
        for note in notes:
            review = reviews.get(note["id"])
            note["review"] = (
                None
                if review is None
                else {
                    "decision": review.decision,
                    "reviewer": review.reviewer.get_username(),
                    "comment": review.comment,
                    # The annotator changed their answer after it was reviewed.
                    "stale": note["updated_at"] > review.annotation_updated_at,
                    "updated_at": review.updated_at,
                }
            )
    ai_by_response: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for feedback in AIFeedback.objects.filter(response_id__in=list(responses)).order_by("id"):
        ai_by_response[feedback.response_id].append(_ai_row(feedback))
    pair_counts = dict(
        PreferencePair.objects.filter(item_id__in=ids).values_list("item_id").annotate(n=Count("pk")).order_by()
    )
    rows = []
    for item in items:
        answers = responses_by_item.get(item.pk, [])
        if unit_model(project) is Item:
            finished = item.done_count >= project.overlap
        else:
            finished = bool(answers) and all(r.done_count >= project.overlap for r in answers)
        notes = annotations_by_item.get(item.pk, [])
        rows.append(
            {
                "id": item.pk,
                "external_id": item.external_id,
                "prompt": item.prompt,
                "image_url": reverse("item-image", args=[item.pk]) if item.image else None,
                "created_at": item.created_at,
                "done_count": item.done_count,
                "status": "done" if finished else "open",
                "responses": [
                    {
                        "id": r.pk,
                        "position": r.position,
                        "label": answer_label(r.position),
                        "text": r.text,
                        "model_name": r.model_name,
                        "done_count": r.done_count,
                        "ai_feedback": ai_by_response.get(r.pk, []),
                    }
                    for r in answers
                ],
                "annotations": notes,
                "agreement": _agreement_of(notes),
                "has_ai": any(ai_by_response.get(r.pk) for r in answers),
                "n_pairs": pair_counts.get(item.pk, 0),
            }
        )
    return rows


# ------------------------------------------------------------------------------------------------ one item


def browse_item(*, project: Project, item_id: int) -> dict[str, Any] | None:
    """One item of the project with everything said about it: its row (`browse_rows`) with the AI labeler's
    claims and P(yes), the uses of its suggestions, and the preference pairs it produced; None if the item
    is not in the project."""
    item = Item.objects.filter(project=project, pk=item_id).first() if 0 < item_id < 2**63 else None
    if item is None:
        return None
    row = browse_rows(project=project, items=[item])[0]
    positions = {r["id"]: r["label"] for r in row["responses"]}
    row["suggestion_uses"] = [
        {
            "annotator": use.annotator.get_username(),
            "annotation_id": use.annotation_id,
            "labeler_model": use.labeler_model,
            "took": use.took,
            "rewrite_used": use.rewrite_used,
            "rewrite_edited": use.rewrite_edited,
            "created_at": use.created_at,
        }
        for use in AISuggestionUse.objects.filter(item=item).select_related("annotator").order_by("id")
    ]
    row["pairs"] = [
        {
            "id": pair.pk,
            "source": pair.source,
            "source_label": pair.get_source_display(),
            "chosen": positions.get(pair.chosen_response_id, "edited answer"),
            "rejected": positions.get(pair.rejected_response_id, "edited answer"),
            "chosen_text": pair.chosen_text,
            "rejected_text": pair.rejected_text,
            "margin": pair.margin,
            "agreement": pair.agreement,
            "n_votes": pair.n_votes,
        }
        for pair in PreferencePair.objects.filter(item=item).order_by("source", "id")
    ]
    row["meta"] = item.meta
    return row


def browse_filters(
    *,
    annotator: str = "",
    status: str = "",
    feedback: Sequence[str] = (),
    agreement: str = "",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    search: str = "",
    sort: str = "id",
) -> BrowseFilters:
    """Checked filters: the annotator is found by username (a 400 naming `annotator` if there is none), the
    dates must be in order."""
    annotator_id = None
    if annotator.strip():
        user_model = get_user_model()
        annotator_id = (
            user_model.objects.filter(**{user_model.USERNAME_FIELD: annotator.strip()})
            .values_list("pk", flat=True)
            .first()
        )
        if annotator_id is None:
            raise ApplicationError(f"annotator: no account named {annotator.strip()!r}.", {"field": "annotator"})
    if date_from is not None and date_to is not None and date_to < date_from:
        raise ApplicationError("date_to: the last day is before the first (date_from).", {"field": "date_to"})
    return BrowseFilters(
        annotator_id=annotator_id,
        status=status,
        feedback=tuple(dict.fromkeys(feedback)),
        agreement=agreement,
        date_from=date_from,
        date_to=date_to,
        search=search.strip(),
        sort=sort,
    )
