"""The rules of the task queue, in plain Python (no Django), so they can be read and tested alone.

The queue hands out *units*: an item for kinds that compare an item's responses (pairwise, ranking), one
response for kinds that judge a single answer (a correction of one answer, a rating of one caption). Each
unit has `overlap` slots; a slot is taken by a live lease or a submitted annotation and given back when a
lease expires or the annotator skips. Nobody gets the same unit twice.

`annotation.services.queue` keeps, per unit, `taken_count` (slots held), `is_open` (a slot is free) and
`reopened` (the unit gave a slot back at least once). An annotator's *cursor* is the highest unit id they
were ever given. Units are handed out lowest id first, so every unit below the cursor that the annotator
never had was full when they passed it; it can only be open again if it gave a slot back, i.e. if it is
`reopened`. So the next unit for an annotator is

1. the lowest open, reopened unit at or below their cursor that they never had (a short list: only units
   that lost a lease or a skip and were not taken again), else
2. the lowest open unit above their cursor (they cannot have had any of those).

Both are one index range read, however many units the project has: next task costs the same at 10k and
at 100k tasks.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass

UNIT_ITEM = "item"
UNIT_RESPONSE = "response"

# Project kinds (the values of `annotation.models.ProjectKind`) and the unit each one queues.
KIND_UNITS: dict[str, str] = {
    "pairwise": UNIT_ITEM,
    "ranking": UNIT_ITEM,
    "correction": UNIT_RESPONSE,
    "rating": UNIT_RESPONSE,
}
# Keys 1..9 pick a level or a hallucination type, so a scale has at most nine entries.
MAX_SCALE_ENTRIES = 9
MAX_REASON_CHARS = 5000
MAX_TIME_SPENT_MS = 24 * 3600 * 1000


def task_unit(kind: str) -> str:
    """What one task of a project of this kind is: an item (compare its answers) or one response."""
    try:
        return KIND_UNITS[kind]
    except KeyError:
        raise ValueError(f"unknown project kind {kind!r}") from None


def shown_order(
    *, kind: str, response_ids: Sequence[int], unit_response_id: int | None, rng: random.Random
) -> list[int]:
    """The response ids an annotator is shown, left to right (or top to bottom), randomized.

    Pairwise shows two responses sampled from the item's (all of them when there are two), in random
    order; ranking shows every response in random order; correction and rating show the unit's response.
    """
    if task_unit(kind) == UNIT_RESPONSE:
        if unit_response_id is None:
            raise ValueError(f"a {kind} task needs its response")
        return [unit_response_id]
    ids = list(response_ids)
    if kind == "pairwise":
        return rng.sample(ids, 2) if len(ids) >= 2 else ids
    rng.shuffle(ids)
    return ids


def is_open_after(*, taken: int, overlap: int) -> bool:
    """Whether a unit with `taken` slots held still has a free one."""
    return taken < overlap


class EmptyReason(enum.StrEnum):
    """Why next task has nothing to give; the page shows `empty_message` for each."""

    NO_TASKS = "no_tasks"
    ALL_DONE = "all_done"
    DONE_FOR_YOU = "done_for_you"
    WAIT = "wait"
    QUOTA = "quota"


def empty_reason(*, total: int, finished: int, unfinished_not_yours: bool, quota_left: int | None) -> EmptyReason:
    """Why an annotator got no task: `total` units, `finished` of them fully annotated, whether some
    unfinished unit exists that this annotator never had (it is held by others' leases: wait), and how
    many more answers they may give (None: no quota)."""
    if quota_left is not None and quota_left <= 0:
        return EmptyReason.QUOTA
    if total == 0:
        return EmptyReason.NO_TASKS
    if finished >= total:
        return EmptyReason.ALL_DONE
    return EmptyReason.WAIT if unfinished_not_yours else EmptyReason.DONE_FOR_YOU


def empty_message(reason: EmptyReason, *, quota: int | None = None) -> str:
    return {
        EmptyReason.NO_TASKS: "This project has no tasks yet.",
        EmptyReason.ALL_DONE: "Every task in this project has all the annotations it needs. Thank you!",
        EmptyReason.DONE_FOR_YOU: "You have done every task open to you in this project. Thank you!",
        EmptyReason.WAIT: (
            "No task is free for you right now: the remaining ones are held by other annotators or done by "
            "you. Abandoned tasks come back when their lease expires; try again later."
        ),
        EmptyReason.QUOTA: f"You have reached this project's limit of {quota} answers. Thank you for taking part!",
    }[reason]


@dataclass(frozen=True)
class RateWindow:
    """At most `per_minute` new tasks in any 60 seconds (0 turns the limit off)."""

    per_minute: int

    def allows(self, *, taken_last_minute: int) -> bool:
        return self.per_minute == 0 or taken_last_minute < self.per_minute


def pairwise_fields(*, choice: str, strength: int, reason: str) -> dict[str, object]:
    """A pairwise answer checked and normalized: tie and both-bad carry no strength."""
    if choice not in ("a", "b", "tie", "both_bad"):
        raise ValueError(f"Unknown choice {choice!r}; choose one of a, b, tie, both_bad.")
    if strength not in (1, 2):
        raise ValueError("Strength is 1 (slightly better) or 2 (clearly better).")
    if len(reason) > MAX_REASON_CHARS:
        raise ValueError(f"The reason is longer than {MAX_REASON_CHARS} characters.")
    return {"choice": choice, "strength": strength if choice in ("a", "b") else 1, "reason": reason.strip()}


def rating_level(*, level: int, levels: Sequence[str]) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < len(levels):
        raise ValueError(f"Level must be 0..{len(levels) - 1} ({', '.join(levels)}).")
    return level


def ranking_order(*, order: Sequence[int], shown: Sequence[int]) -> list[int]:
    """A full order of the shown responses, best first: every shown response exactly once."""
    order = list(order)
    if sorted(order) != sorted(shown) or len(set(order)) != len(order):
        raise ValueError("A ranking must order every shown answer exactly once.")
    return order


def scale_check(entries: Sequence[str], *, what: str) -> list[str]:
    """A rating scale or list of hallucination types: 2..9 distinct, non-empty names (keys 1..9)."""
    cleaned = [str(entry).strip() for entry in entries]
    if any(not entry for entry in cleaned):
        raise ValueError(f"The {what} contain an empty entry.")
    if len(set(cleaned)) != len(cleaned):
        raise ValueError(f"The {what} contain a duplicate.")
    if not 2 <= len(cleaned) <= MAX_SCALE_ENTRIES:
        raise ValueError(f"Give 2 to {MAX_SCALE_ENTRIES} {what} (keys 1..{MAX_SCALE_ENTRIES} pick them).")
    return cleaned


def time_spent(value: int) -> int:
    """Client-reported time on a task, clamped to 0..24 h (a tab left open overnight is not a datum)."""
    return max(0, min(int(value), MAX_TIME_SPENT_MS))
