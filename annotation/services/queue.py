"""The task queue (leases of units to annotators) and the submission of annotations of every kind.

The rules are in `annotation.assignment` (pure Python); this module keeps them in the database:

- `assignment_next` gives an annotator the lease they already hold, or takes a free slot of the next unit
  for them: the lowest reopened unit at or below their cursor that they never had, else the lowest open
  unit above it. Each is one read of a partial index, so its cost does not grow with the project. A slot
  is taken by a conditional UPDATE (`... WHERE is_open`), so two annotators asking at once never get the
  same slot: on SQLite the IMMEDIATE transaction serializes writers, on PostgreSQL the row lock makes the
  second UPDATE see the first one's result.
- Rating projects choose the caption instead by their `rating_sampling` (`_caption_take`): least-rated
  first, or adaptive (KL-LUCB for the top k, `annotation.services.caption_sampling`); the same slots, the
  same never-twice rule, no cursor.
- Expired leases are reclaimed at the start of every `assignment_next` (one read of a partial index when
  none has expired): their slots go back, and their units are marked `reopened`.
- Submits are idempotent by client request id (`SubmitRequest`): a repeated request returns the stored
  annotation and changes nothing. Submitting a task already submitted amends that annotation (the
  annotator went back to it).
- A submit's cost does not grow with the project or the item: a rating adds one to its caption's counter
  of that level (`ResponseRatingCount`), and every submit marks its item's pairs stale (`Item.pairs_stale`)
  rather than re-deriving them; `preference_pairs_refresh_stale` derives them when a snapshot freezes.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, Model, OuterRef
from django.utils import timezone

from annotation import assignment as rules
from annotation.models import (
    Assignment,
    AssignmentStatus,
    Correction,
    GoldAnswer,
    Item,
    PairwiseJudgment,
    Project,
    ProjectKind,
    Ranking,
    Rating,
    Response,
    ResponseRatingCount,
    SubmitRequest,
    Visibility,
    annotation_model_for,
    unit_model_for,
)
from annotation.segments import SegmentError, correction_check
from annotation.services.pair_refresh import preference_pairs_refresh_request
from loupe import rows
from loupe.errors import ApplicationError

_SCAN_BATCH = 16
_RECLAIM_BATCH = 500
_random = random.SystemRandom()
_T = TypeVar("_T")


class _WriterLock:
    """One queue writer at a time across this machine's web processes, when the database is SQLite.

    SQLite has a single writer; a second one waits in SQLite's busy handler, which polls with sleeps
    growing to 100 ms, so under a few concurrent annotators the unlucky ones wait hundreds of ms. An
    exclusive `flock` on a file beside the database (plus a thread lock, since `flock` is per open file)
    hands the write lock over as soon as it is released. Other writers (imports, workers) still meet
    SQLite's own lock; PostgreSQL needs none of this (row locks).
    """

    def __init__(self) -> None:
        self._thread_lock = threading.Lock()
        self._file: Any = None
        self._pid = 0

    def _handle(self) -> Any:
        if self._file is None or self._pid != os.getpid():  # a forked worker opens its own
            path = f"{connection.settings_dict['NAME']}.queue-lock"
            self._file, self._pid = open(path, "a+b"), os.getpid()  # noqa: SIM115 — held for the process's life
        return self._file

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        name = str(connection.settings_dict["NAME"])
        if (
            connection.vendor != "sqlite"
            or connection.in_atomic_block
            or name.startswith((":memory:", "file:"))
            or not getattr(settings, "LOUPE_QUEUE_WRITER_LOCK", True)  # e.g. a filesystem without flock
        ):
            # Not SQLite (or not a file), or already inside a transaction that holds (or will wait for)
            # the write lock.
            yield
            return
        with self._thread_lock:
            handle = self._handle()
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


_writer = _WriterLock()


def queue_transaction(function: Callable[..., _T]) -> Callable[..., _T]:
    """Run `function` in one transaction, holding the queue's writer lock on SQLite."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> _T:
        with _writer.held(), transaction.atomic():
            return function(*args, **kwargs)

    return wrapper


def _sql(query: str, params: list[Any]) -> list[tuple]:
    """Raw SQL for the queue's hot path (table names come from model metadata and every value is a
    parameter, hence the S608 waivers below): its few statements cost ~0.05 ms each this way, against ~0.5 ms
    through the ORM's query compiler, which is most of a next → submit round trip otherwise."""
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def _rowcount(query: str, params: list[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.rowcount


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


_ASSIGNMENTS, _ITEMS, _RESPONSES, _SUBMITS = (_table(m) for m in (Assignment, Item, Response, SubmitRequest))


_RATING_COUNTS = _table(ResponseRatingCount)
# Gold units (`GoldAnswer`) are served by `_gold_take` only, never by the ordinary scans: they take no slot.
_GOLD = _table(GoldAnswer)
_NOT_GOLD = f"AND NOT EXISTS (SELECT 1 FROM {_GOLD} g WHERE g.project_id = u.project_id AND g.unit_id = u.id) "  # noqa: S608


def _rating_count_add(*, response_id: int, level: int, delta: int) -> None:
    """Add `delta` to the response's counter of ratings at `level`, in the submit's transaction (one upsert:
    the cost of a rating does not depend on how many the caption or the contest has)."""
    _sql(
        f"INSERT INTO {_RATING_COUNTS} (response_id, level, n_ratings) VALUES (%s, %s, %s) "  # noqa: S608
        f"ON CONFLICT (response_id, level) DO UPDATE SET n_ratings = {_RATING_COUNTS}.n_ratings + %s",
        [response_id, level, max(delta, 0), delta],
    )


class RateLimited(ApplicationError):
    status_code = 429


unit_model = unit_model_for
annotation_model = annotation_model_for


# --------------------------------------------------------------------------------------------- next


def _lock_annotator(annotator: AbstractBaseUser) -> None:
    """Serialize one annotator's queue calls (two tabs asking at once) on databases with row locks; on
    SQLite the IMMEDIATE transaction already serializes every writer."""
    if connection.features.has_select_for_update:
        list(get_user_model().objects.select_for_update().filter(pk=annotator.pk).values_list("pk"))


def _slots_release(*, model: type[Item] | type[Response], counts: Counter, overlap: int) -> None:
    """Give back `counts[unit_id]` slots of each unit; the units are open again and marked reopened."""
    for unit_id in sorted(counts):  # one order everywhere, so concurrent releases cannot deadlock
        n = counts[unit_id]
        _sql(
            f"UPDATE {_table(model)} SET "  # noqa: S608
            "taken_count = CASE WHEN taken_count >= %s THEN taken_count - %s ELSE 0 END, "
            "is_open = CASE WHEN taken_count < %s THEN %s ELSE %s END, reopened = %s WHERE id = %s",
            [n, n, overlap + n, True, False, True, unit_id],
        )


def leases_reclaim(*, project: Project, now: datetime | None = None) -> int:
    """Expire the project's leases that ran out; their slots go back to the queue. Returns how many."""
    now = now or timezone.now()
    any_expired = _sql(
        f"SELECT 1 FROM {_ASSIGNMENTS} WHERE project_id = %s AND status = 'leased' "  # noqa: S608
        "AND lease_expires_at <= %s LIMIT 1",
        [project.pk, connection.ops.adapt_datetimefield_value(now)],
    )
    if not any_expired:
        return 0
    expired = Assignment.objects.filter(project=project, status=AssignmentStatus.LEASED, lease_expires_at__lte=now)
    if connection.features.has_select_for_update_skip_locked:
        # A lease being submitted right now is locked by that submit: leave it to the submit.
        expired = expired.select_for_update(skip_locked=True)
    rows = list(expired.values_list("pk", "unit_id")[:_RECLAIM_BATCH])
    if not rows:
        return 0
    Assignment.objects.filter(pk__in=[pk for pk, _ in rows], status=AssignmentStatus.LEASED).update(
        status=AssignmentStatus.EXPIRED
    )
    _slots_release(model=unit_model(project), counts=Counter(unit for _, unit in rows), overlap=project.overlap)
    return len(rows)


def _slot_take(*, model: type[Item] | type[Response], unit_id: int, overlap: int) -> bool:
    """Take one free slot of the unit; False if it has none (another annotator took the last one).

    The condition `is_open` is re-checked by the UPDATE itself: on PostgreSQL a concurrent taker waits
    for the row lock and then sees the new row, so the last slot goes to one of them only."""
    return (
        _rowcount(
            f"UPDATE {_table(model)} SET taken_count = taken_count + 1, "  # noqa: S608
            "is_open = CASE WHEN taken_count + 1 < %s THEN %s ELSE %s END WHERE id = %s AND is_open",
            [overlap, True, False, unit_id],
        )
        == 1
    )


def annotator_cursor(*, project: Project, annotator: AbstractBaseUser) -> int:
    """The highest unit id this annotator was ever given in the project (0 if none), gold units aside (they
    are served out of order: counting one would skip the ordinary units below it)."""
    highest = _sql(
        f"SELECT a.unit_id FROM {_ASSIGNMENTS} a WHERE a.project_id = %s AND a.annotator_id = %s "  # noqa: S608
        f"AND NOT EXISTS (SELECT 1 FROM {_GOLD} g WHERE g.project_id = %s AND g.unit_id = a.unit_id) "
        "ORDER BY a.unit_id DESC LIMIT 1",
        [project.pk, annotator.pk, project.pk],
    )
    return highest[0][0] if highest else 0


def _caption_take(*, project: Project, annotator: AbstractBaseUser) -> int | None:
    """Take a slot of the next caption of a rating project by its `rating_sampling` (see
    `annotation.services.caption_sampling`); its id, or None when the participant has had every open one.

    The candidates leave out the captions this participant was ever given; each is taken by the conditional
    UPDATE of `_slot_take`, so a full one is passed over. The adaptive shortlist comes from this process's
    sampler, which may predate the newest captions or leases: when none of it can be taken, the uniform
    read of the database decides."""
    from annotation.services import caption_sampling

    if project.rating_sampling == "adaptive":
        choice = caption_sampling.AdaptiveChoice(project=project, annotator=annotator)
        for index, unit_id in choice.candidates:
            if _slot_take(model=Response, unit_id=unit_id, overlap=project.overlap):
                choice.taken(index)
                return unit_id
            choice.full(index)
    while True:
        ids = caption_sampling.uniform_candidates(project=project, annotator=annotator, not_gold=_NOT_GOLD)
        for unit_id in ids:
            if _slot_take(model=Response, unit_id=unit_id, overlap=project.overlap):
                return unit_id
        if len(ids) < caption_sampling.SHORTLIST:
            return None


def _index_pinned(model: type[Model], suffix: str) -> str:
    """`INDEXED BY <the model's partial index>` on SQLite, nothing elsewhere.

    Without statistics SQLite's planner takes the full (project, id) index over a partial one with the same
    columns, then reads every unit in the id range to test `is_open` / `reopened`: the reopened scan cost
    1.8 ms per next task after 5,000 tasks and grew with the annotator's cursor. PostgreSQL plans by the
    partial indexes' sizes and needs no hint."""
    if connection.vendor != "sqlite":
        return ""
    return f"INDEXED BY {model._meta.model_name}_{suffix}_idx "


def _unit_take(*, project: Project, annotator: AbstractBaseUser) -> int | None:
    """Take a slot of the next unit for this annotator (see `annotation.assignment`); its id, or None."""
    if project.kind == ProjectKind.RATING:
        return _caption_take(project=project, annotator=annotator)
    model = unit_model(project)
    units, assignments = _table(model), _table(Assignment)
    cursor = annotator_cursor(project=project, annotator=annotator)
    # The literal conditions match the partial indexes' (`WHERE is_open`, `WHERE is_open AND reopened`).
    scans = []
    if cursor:
        scans.append(
            (
                f"SELECT u.id FROM {units} u {_index_pinned(model, 'reopened')}"  # noqa: S608
                "WHERE u.project_id = %s AND u.is_open AND u.reopened "
                f"AND u.id <= %s AND u.id > %s {_NOT_GOLD}AND NOT EXISTS (SELECT 1 FROM {assignments} a WHERE "
                "a.project_id = %s AND a.annotator_id = %s AND a.unit_id = u.id) ORDER BY u.id LIMIT %s",
                [project.pk, cursor],
                [project.pk, annotator.pk, _SCAN_BATCH],
            )
        )
    scans.append(
        (
            f"SELECT u.id FROM {units} u {_index_pinned(model, 'open')}"  # noqa: S608
            "WHERE u.project_id = %s AND u.is_open AND u.id > %s "
            f"AND u.id > %s {_NOT_GOLD}ORDER BY u.id LIMIT %s",
            [project.pk, cursor],
            [_SCAN_BATCH],
        )
    )
    for query, head, tail in scans:
        after = 0
        while True:
            ids = [row[0] for row in _sql(query, [*head, after, *tail])]
            for unit_id in ids:
                if _slot_take(model=model, unit_id=unit_id, overlap=project.overlap):
                    return unit_id
            if len(ids) < _SCAN_BATCH:
                break
            after = ids[-1]
    return None


def _public_limits(*, project: Project, annotator: AbstractBaseUser, now: datetime) -> None:
    """Quota and rate limit of a public crowd project (raise RateLimited; quota ends the queue)."""
    taken_last_minute = Assignment.objects.filter(
        project=project, annotator=annotator, created_at__gt=now - timedelta(seconds=60)
    ).count()
    if not rules.RateWindow(project.public_rate_per_minute).allows(taken_last_minute=taken_last_minute):
        raise RateLimited(
            "You are going faster than this project allows; wait a minute and go on.",
            {"per_minute": project.public_rate_per_minute},
        )


def quota_left(*, project: Project, annotator: AbstractBaseUser) -> int | None:
    """How many more answers this annotator may give (None where the project has no quota)."""
    if project.visibility != Visibility.PUBLIC or project.public_quota == 0:
        return None
    done = Assignment.objects.filter(project=project, annotator=annotator, status=AssignmentStatus.SUBMITTED).count()
    return max(0, project.public_quota - done)


_gold_random = random.Random(_random.getrandbits(64))  # tests seed it; a draw per task served


def _gold_take(*, project: Project, annotator: AbstractBaseUser) -> int | None:
    """With probability `project.gold_rate`, a gold unit this annotator never had (None otherwise, or when
    they had them all). Gold units take no slot: every annotator may get each one, once."""
    if project.gold_rate <= 0 or _gold_random.random() >= project.gold_rate:
        return None
    unseen = _sql(
        f"SELECT g.unit_id FROM {_GOLD} g WHERE g.project_id = %s AND NOT EXISTS "  # noqa: S608
        f"(SELECT 1 FROM {_ASSIGNMENTS} a WHERE a.project_id = %s AND a.annotator_id = %s AND a.unit_id = g.unit_id) "
        "ORDER BY g.unit_id LIMIT 64",
        [project.pk, project.pk, annotator.pk],
    )
    return _gold_random.choice(unseen)[0] if unseen else None


@queue_transaction
def assignment_next(*, project: Project, annotator: AbstractBaseUser, after: int | None = None) -> Assignment | None:
    """Lease the next task to `annotator`, or give back the one they already hold; None when none is left.

    A task is open while fewer than `project.overlap` annotators have submitted it or hold a live lease
    on it; nobody is given the same task twice. Leases last `LOUPE_LEASE_SECONDS`; asking again renews the
    one held. On a public project the annotator's quota and rate limit apply.

    `after` (an assignment id) asks for the task to show after that one, while it is still shown: a lease
    the annotator holds other than `after`, else a new one. That is how a page prefetches its next task, so
    an annotator holds at most two leases (the task shown and the one prefetched); without `after` the
    oldest lease held comes back, so a reloaded page shows the task it showed.
    """
    now = timezone.now()
    lease_until = now + timedelta(seconds=settings.LOUPE_LEASE_SECONDS)
    _lock_annotator(annotator)
    held = [
        pk
        for (pk,) in _sql(
            f"SELECT id FROM {_ASSIGNMENTS} "  # noqa: S608
            "WHERE project_id = %s AND annotator_id = %s AND status = 'leased' ORDER BY id LIMIT 2",
            [project.pk, annotator.pk],
        )
    ]
    other = [pk for pk in held if pk != after]
    if other:
        _sql(
            f"UPDATE {_ASSIGNMENTS} SET lease_expires_at = %s WHERE id = %s",  # noqa: S608
            [connection.ops.adapt_datetimefield_value(lease_until), other[0]],
        )
        return rows.instance(Assignment, f"SELECT * FROM {_ASSIGNMENTS} WHERE id = %s", [other[0]])  # noqa: S608
    leases_reclaim(project=project, now=now)
    if project.visibility == Visibility.PUBLIC:
        left = quota_left(project=project, annotator=annotator)
        if left is not None and left - len(held) <= 0:  # the task shown (`after`) counts as answered
            return None
        _public_limits(project=project, annotator=annotator, now=now)
    unit_id = _gold_take(project=project, annotator=annotator) or _unit_take(project=project, annotator=annotator)
    if unit_id is None:
        return None
    if unit_model(project) is Response:
        query = f"SELECT item_id, id FROM {_RESPONSES} WHERE id = %s"  # noqa: S608
        item_id, response_id = _sql(query, [unit_id])[0]
        response_ids = [response_id]
    else:
        item_id, response_id = unit_id, None
        query = f"SELECT id FROM {_RESPONSES} WHERE item_id = %s ORDER BY position"  # noqa: S608
        response_ids = [row[0] for row in _sql(query, [unit_id])]
    shown = rules.shown_order(kind=project.kind, response_ids=response_ids, unit_response_id=response_id, rng=_random)
    assignment = Assignment(
        project=project,
        item_id=item_id,
        response_id=response_id,
        unit_id=unit_id,
        annotator=annotator,
        lease_expires_at=lease_until,
        shown_order=shown,
    )
    rows.insert(assignment)  # no save signals on Assignment; the ORM's create would cost more than the rest
    return assignment


def queue_empty_reason(*, project: Project, annotator: AbstractBaseUser) -> rules.EmptyReason:
    """Why `assignment_next` gave this annotator nothing (reads the whole project: call it only then)."""
    model = unit_model(project)
    gold = GoldAnswer.objects.filter(project=project).values("unit_id")  # not in the ordinary queue
    units = model.objects.filter(project=project).exclude(pk__in=gold)
    had = Assignment.objects.filter(project=project, annotator=annotator, unit_id=OuterRef("pk"))
    return rules.empty_reason(
        total=units.count(),
        finished=units.filter(done_count__gte=project.overlap).count(),
        unfinished_not_yours=units.filter(done_count__lt=project.overlap).filter(~Exists(had)).exists(),
        quota_left=quota_left(project=project, annotator=annotator),
    )


# ------------------------------------------------------------------------------------------ skip


def _assignment_locked(
    *, assignment_id: int, annotator: AbstractBaseUser, project: Project | None = None
) -> Assignment:
    """The annotator's assignment, row-locked until the transaction ends, with its project."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    query = f"SELECT * FROM {_ASSIGNMENTS} WHERE id = %s{lock}"  # noqa: S608
    assignment = rows.instance(Assignment, query, [assignment_id])
    if (
        assignment is None
        or assignment.annotator_id != annotator.pk
        or (project is not None and assignment.project_id != project.pk)
    ):
        raise ApplicationError("This task is not yours.", {"assignment": assignment_id})
    assignment.project = project if project is not None else Project.objects.get(pk=assignment.project_id)
    # The item is neither read nor locked here (a submit needs only its id): a submit's first write is its
    # item's stale mark, which takes the row lock (see `_submit`). A FOR UPDATE here would also block the
    # key-share lock that committing a new lease of the same item takes, and deadlock against that lease's
    # unit (PostgreSQL).
    return assignment


@queue_transaction
def assignment_skip(*, assignment_id: int, annotator: AbstractBaseUser, project: Project | None = None) -> Assignment:
    """Give the task back without answering: its slot returns to the queue, and this annotator is never
    given it again. Skipping twice is harmless; a submitted task cannot be skipped."""
    assignment = _assignment_locked(assignment_id=assignment_id, annotator=annotator, project=project)
    if assignment.status == AssignmentStatus.SUBMITTED:
        raise ApplicationError("This task is already answered; go back to it to change your answer.")
    if assignment.status == AssignmentStatus.LEASED:
        _slots_release(
            model=unit_model(assignment.project),
            counts=Counter([assignment.unit_id]),
            overlap=assignment.project.overlap,
        )
    if assignment.status != AssignmentStatus.SKIPPED:
        assignment.status = AssignmentStatus.SKIPPED
        _sql(f"UPDATE {_ASSIGNMENTS} SET status = 'skipped' WHERE id = %s", [assignment.pk])  # noqa: S608
    return assignment


# ---------------------------------------------------------------------------------------- submit


@dataclass(frozen=True)
class Submitted:
    """What a submit stored: the annotation, and whether this request changed anything."""

    annotation: Model
    assignment: Assignment
    replayed: bool
    amended: bool


def _submit(
    *,
    assignment_id: int,
    annotator: AbstractBaseUser,
    client_request_id: str,
    time_spent_ms: int,
    kind: str,
    fields_for: Callable[[Assignment], dict[str, Any]],
    project: Project | None,
) -> Submitted:
    """The part every kind shares: ownership, idempotency, lease state, counters, amend, pairs."""
    if not client_request_id or len(client_request_id) > 64:
        raise ApplicationError("A client request id of 1 to 64 characters is required.")
    assignment = _assignment_locked(assignment_id=assignment_id, annotator=annotator, project=project)
    project = assignment.project
    model = annotation_model_for(project)
    now = timezone.now()
    # The receipt is written first and a replay is told by its being there already (one statement, not a
    # read and a write); any refusal below rolls it back with the rest. After the lock: a twin request
    # that got the lock first has committed its receipt by now.
    if not _rowcount(
        f"INSERT INTO {_SUBMITS} "  # noqa: S608
        "(annotator_id, client_request_id, assignment_id, created_at) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (annotator_id, client_request_id) DO NOTHING",
        [annotator.pk, client_request_id, assignment.pk, connection.ops.adapt_datetimefield_value(now)],
    ):
        receipt = _sql(
            f"SELECT assignment_id FROM {_SUBMITS} "  # noqa: S608
            "WHERE annotator_id = %s AND client_request_id = %s",
            [annotator.pk, client_request_id],
        )
        if not receipt or receipt[0][0] != assignment.pk:
            raise ApplicationError("This request id was already used for another task.")
        return Submitted(model.objects.get(assignment=assignment), assignment, replayed=True, amended=False)
    if project.kind != kind:
        raise ApplicationError(f"This task is a {project.get_kind_display().lower()} task, not {kind}.")
    if assignment.status == AssignmentStatus.SKIPPED:
        raise ApplicationError("You skipped this task; it has gone back to the queue.")
    try:
        fields = fields_for(assignment)
    except (ValueError, SegmentError) as error:
        raise ApplicationError(str(error)) from error
    # The item's pairs are re-derived before the next snapshot freezes, not here (constant-time submits).
    # An UPDATE even when the flag is already set, and the first write to a unit or counter: its row lock
    # orders this submit against a refresh of the item in progress (`preference_pairs_rebuild`), and every
    # submit takes the item before its unit and counters, one order everywhere (PostgreSQL). A new answer
    # also counts on its item here (the item is the unit of pairwise and ranking; items of one-answer kinds
    # count the answers to all their responses); should it be refused below, the count rolls back too.
    amended = assignment.status == AssignmentStatus.SUBMITTED
    _sql(
        f"UPDATE {_ITEMS} SET pairs_stale = %s, done_count = done_count + %s WHERE id = %s",  # noqa: S608
        [True, 0 if amended else 1, assignment.item_id],
    )
    preference_pairs_refresh_request(project_id=project.pk)  # derives them in the background, after commit
    spent = rules.time_spent(time_spent_ms)
    if amended:
        annotation = model.objects.get(assignment=assignment)
        if kind == ProjectKind.RATING and annotation.level != fields["level"]:
            _rating_count_add(response_id=annotation.response_id, level=annotation.level, delta=-1)
            _rating_count_add(response_id=annotation.response_id, level=fields["level"], delta=1)
        for name, value in fields.items():
            setattr(annotation, name, value)
        annotation.client_request_id = client_request_id
        annotation.time_spent_ms = min(annotation.time_spent_ms + spent, rules.MAX_TIME_SPENT_MS)
        annotation.save()
    else:
        units = unit_model(project)
        if assignment.status == AssignmentStatus.EXPIRED and not _slot_take(
            model=units, unit_id=assignment.unit_id, overlap=project.overlap
        ):
            raise ApplicationError("This task's lease expired and it went to another annotator; take the next one.")
        annotation = model(
            item_id=assignment.item_id,
            annotator=annotator,
            assignment=assignment,
            client_request_id=client_request_id,
            time_spent_ms=spent,
            **fields,
        )
        # No savepoint around it: the error leaves the submit's own transaction (or savepoint), which rolls
        # back, before any other statement runs.
        try:
            rows.insert(annotation)  # the annotation models have no save signals
        except IntegrityError as error:
            raise ApplicationError("You have already answered this task.") from error
        assignment.status = AssignmentStatus.SUBMITTED
        assignment.submitted_at = now
        _sql(
            f"UPDATE {_ASSIGNMENTS} SET status = 'submitted', submitted_at = %s WHERE id = %s",  # noqa: S608
            [connection.ops.adapt_datetimefield_value(now), assignment.pk],
        )
        if units is Response:  # the item counted above
            _sql(f"UPDATE {_RESPONSES} SET done_count = done_count + 1 WHERE id = %s", [assignment.unit_id])  # noqa: S608
        if kind == ProjectKind.RATING:
            _rating_count_add(response_id=annotation.response_id, level=annotation.level, delta=1)
    return Submitted(annotation, assignment, replayed=False, amended=amended)


@queue_transaction
def pairwise_judgment_submit(
    *,
    assignment_id: int,
    annotator: AbstractBaseUser,
    choice: str,
    client_request_id: str,
    strength: int = 1,
    reason: str = "",
    time_spent_ms: int = 0,
    project: Project | None = None,
) -> PairwiseJudgment:
    """Store (or amend) a choice between the two answers shown: A is the left one, B the right one."""

    def fields_for(assignment: Assignment) -> dict[str, Any]:
        if len(assignment.shown_order) < 2:
            raise ValueError("This item has fewer than two responses to compare.")
        response_a, response_b = assignment.shown_order[:2]
        return {
            "response_a_id": response_a,
            "response_b_id": response_b,
            **rules.pairwise_fields(choice=choice, strength=strength, reason=reason),
        }

    return _submit(
        assignment_id=assignment_id,
        annotator=annotator,
        client_request_id=client_request_id,
        time_spent_ms=time_spent_ms,
        kind=ProjectKind.PAIRWISE,
        fields_for=fields_for,
        project=project,
    ).annotation


@queue_transaction
def correction_submit(
    *,
    assignment_id: int,
    annotator: AbstractBaseUser,
    segments: list[Any],
    client_request_id: str,
    time_spent_ms: int = 0,
    project: Project | None = None,
) -> Correction:
    """Store (or amend) the hallucinated segments of the answer shown, each re-checked against the stored
    text; the corrected text is computed here. No segments: the answer has no hallucination."""

    def fields_for(assignment: Assignment) -> dict[str, Any]:
        response = Response.objects.get(pk=assignment.response_id)
        checked = correction_check(text=response.text, segments=segments, types=assignment.project.hallucination_types)
        return {"response_id": response.pk, "segments": checked.segments, "corrected_text": checked.corrected_text}

    return _submit(
        assignment_id=assignment_id,
        annotator=annotator,
        client_request_id=client_request_id,
        time_spent_ms=time_spent_ms,
        kind=ProjectKind.CORRECTION,
        fields_for=fields_for,
        project=project,
    ).annotation


@queue_transaction
def rating_submit(
    *,
    assignment_id: int,
    annotator: AbstractBaseUser,
    level: int,
    client_request_id: str,
    time_spent_ms: int = 0,
    project: Project | None = None,
) -> Rating:
    """Store (or amend) a rating of the caption shown: `level` indexes the project's scale, worst first."""

    def fields_for(assignment: Assignment) -> dict[str, Any]:
        return {
            "response_id": assignment.response_id,
            "level": rules.rating_level(level=level, levels=assignment.project.rating_levels),
        }

    return _submit(
        assignment_id=assignment_id,
        annotator=annotator,
        client_request_id=client_request_id,
        time_spent_ms=time_spent_ms,
        kind=ProjectKind.RATING,
        fields_for=fields_for,
        project=project,
    ).annotation


@queue_transaction
def ranking_submit(
    *,
    assignment_id: int,
    annotator: AbstractBaseUser,
    order: list[int],
    client_request_id: str,
    time_spent_ms: int = 0,
    project: Project | None = None,
) -> Ranking:
    """Store (or amend) a full order of the answers shown, best first (response ids)."""

    def fields_for(assignment: Assignment) -> dict[str, Any]:
        return {"order": rules.ranking_order(order=order, shown=assignment.shown_order)}

    return _submit(
        assignment_id=assignment_id,
        annotator=annotator,
        client_request_id=client_request_id,
        time_spent_ms=time_spent_ms,
        kind=ProjectKind.RANKING,
        fields_for=fields_for,
        project=project,
    ).annotation


SUBMITTERS: dict[str, Callable[..., Model]] = {
    ProjectKind.PAIRWISE: pairwise_judgment_submit,
    ProjectKind.CORRECTION: correction_submit,
    ProjectKind.RATING: rating_submit,
    ProjectKind.RANKING: ranking_submit,
}


# ------------------------------------------------------------------------------------ maintenance


@queue_transaction
def queue_units_sync(*, project: Project) -> int:
    """Recount every unit's slots from the database: submitted assignments, live leases and annotations
    stored without an assignment (imported ones). Units whose count drops are marked reopened so that
    annotators who passed them see them again. Call it after changing annotations behind the queue's
    back (an import that carries annotations); returns how many units changed."""
    model = unit_model(project)
    annotations = annotation_model(project)
    unit_field = "item_id" if model is Item else "response_id"
    live = Counter(
        Assignment.objects.filter(
            project=project, status__in=[AssignmentStatus.SUBMITTED, AssignmentStatus.LEASED]
        ).values_list("unit_id", flat=True)
    )
    submitted = Counter(
        Assignment.objects.filter(project=project, status=AssignmentStatus.SUBMITTED).values_list("unit_id", flat=True)
    )
    imported = Counter(
        annotations.objects.filter(item__project=project, assignment__isnull=True).values_list(unit_field, flat=True)
    )
    changed = 0
    for unit in model.objects.filter(project=project).only("pk", "done_count", "taken_count", "is_open", "reopened"):
        done = submitted[unit.pk] + imported[unit.pk]
        taken = live[unit.pk] + imported[unit.pk]
        is_open = rules.is_open_after(taken=taken, overlap=project.overlap)
        reopened = unit.reopened or (is_open and not unit.is_open)
        if (done, taken, is_open, reopened) != (unit.done_count, unit.taken_count, unit.is_open, unit.reopened):
            unit.done_count, unit.taken_count, unit.is_open, unit.reopened = done, taken, is_open, reopened
            unit.save(update_fields=["done_count", "taken_count", "is_open", "reopened"])
            changed += 1
    if model is Response:
        # Items of one-answer kinds count the answers given to any of their responses.
        per_item = Counter()
        for item_id, done in Response.objects.filter(project=project).values_list("item_id", "done_count"):
            per_item[item_id] += done
        for item in Item.objects.filter(project=project).only("pk", "done_count"):
            if item.done_count != per_item[item.pk]:
                item.done_count = per_item[item.pk]
                item.save(update_fields=["done_count"])
    return changed
