"""Gold tasks: marking units with their known answers, and the project's gold rate.

What a gold answer looks like per kind, and how answers are graded against it, is in
`annotation.gold_rules`. The queue serves gold units at the project's `gold_rate`
(`annotation.services.queue._gold_take`), each at most once per annotator and outside the overlap's slots;
the task an annotator gets is the same as any other (the answer stays in `GoldAnswer`, which no task
payload reads). Items holding a gold unit are left out of every snapshot (`annotation.services.snapshots`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from annotation.assignment import UNIT_ITEM, task_unit
from annotation.gold_rules import GoldError, gold_answer_check
from annotation.models import GoldAnswer, Item, Project, Response
from annotation.services.preference_pairs import rating_scale
from loupe.errors import ApplicationError


@dataclass(frozen=True)
class GoldEntry:
    """One unit to mark gold (`answer`) or to make an ordinary task again (`answer` None).

    `response` is the position of the response judged, for correction and rating projects (optional when
    the item has one response). `field` names the entry in error messages (`items[3]`, `gold`) and `line`
    the import line it came from, if any."""

    external_id: str
    answer: dict[str, Any] | None
    response: int | None = None
    field: str = "items"
    line: int | None = None


@dataclass(frozen=True)
class GoldReport:
    marked: int
    unmarked: int


def _error(entry: GoldEntry, key: str, message: str) -> ApplicationError:
    extra: dict[str, Any] = {"field": f"{entry.field}.{key}" if key else entry.field}
    where = f"line {entry.line}, " if entry.line is not None else ""
    if entry.line is not None:
        extra["line"] = entry.line
    return ApplicationError(f"{where}{extra['field']}: {message}", extra)


def gold_answers_set(*, project: Project, entries: Sequence[GoldEntry]) -> GoldReport:
    """Mark (or unmark) gold units, all or nothing: every entry is checked before any is stored, and the
    first bad one is refused naming its field. Marking a unit again replaces its answer."""
    by_key = {
        item.external_id: item
        for item in Item.objects.filter(project=project, external_id__in={e.external_id for e in entries})
    }
    responses: dict[int, list[Response]] = {}
    for response in Response.objects.filter(item__in=list(by_key.values())).order_by("item_id", "position"):
        responses.setdefault(response.item_id, []).append(response)
    per_item = task_unit(project.kind) == UNIT_ITEM
    levels = rating_scale(project)
    types = project.hallucination_types or []
    checked: list[tuple[int, Item, Response | None, dict[str, Any] | None]] = []
    seen: set[int] = set()
    for entry in entries:
        item = by_key.get(entry.external_id)
        if item is None:
            raise _error(entry, "external_id", f"no item {entry.external_id!r} in this project")
        shown = responses.get(item.pk, [])
        response = None
        if per_item:
            if entry.response is not None:
                raise _error(entry, "response", f"a {project.kind} gold task is a whole item; leave response out")
            unit_id, texts = item.pk, [r.text for r in shown]
        else:
            if entry.response is None and len(shown) != 1:
                raise _error(entry, "response", f"the item has {len(shown)} responses: give the position of one")
            position = 0 if entry.response is None else entry.response
            response = next((r for r in shown if r.position == position), None)
            if response is None:
                raise _error(entry, "response", f"the item has no response at position {position}")
            unit_id, texts = response.pk, [response.text]
        if unit_id in seen:
            raise _error(entry, "", "this task is given twice")
        seen.add(unit_id)
        answer = None
        if entry.answer is not None:
            try:
                answer = gold_answer_check(
                    kind=project.kind, answer=entry.answer, response_texts=texts, levels=levels, types=types
                )
            except GoldError as error:
                raise _error(entry, "answer", str(error)) from None
        checked.append((unit_id, item, response, answer))
    marked = unmarked = 0
    with transaction.atomic():
        for unit_id, item, response, answer in checked:
            if answer is None:
                unmarked += GoldAnswer.objects.filter(project=project, unit_id=unit_id).delete()[0]
                continue
            GoldAnswer.objects.update_or_create(
                project=project, unit_id=unit_id, defaults={"item": item, "response": response, "answer": answer}
            )
            marked += 1
    return GoldReport(marked=marked, unmarked=unmarked)


def gold_entries_of_record(*, kind: str, gold: Any, external_id: str, line: int) -> list[GoldEntry]:
    """The gold entries an imported item's `gold` field gives: an answer object, or (correction and rating
    items with several responses) a list with one answer or null per response position."""
    if gold is None:
        return []
    if isinstance(gold, list) and task_unit(kind) != UNIT_ITEM:
        return [
            GoldEntry(external_id=external_id, answer=answer, response=position, field=f"gold[{position}]", line=line)
            for position, answer in enumerate(gold)
            if answer is not None
        ]
    if not isinstance(gold, dict):
        raise ApplicationError(
            f"line {line}, gold: must be an answer object"
            + ("" if task_unit(kind) == UNIT_ITEM else " or a list with one per response (null: not gold)"),
            {"field": "gold", "line": line},
        )
    return [GoldEntry(external_id=external_id, answer=gold, field="gold", line=line)]


def gold_rate_set(*, project: Project, gold_rate: float) -> Project:
    """Set the fraction of tasks served that are gold (0 turns gold off)."""
    if not 0.0 <= gold_rate <= 1.0:
        raise ApplicationError("gold_rate must be between 0 and 1.", {"field": "gold_rate"})
    project.gold_rate = gold_rate
    project.save(update_fields=["gold_rate"])
    return project
