"""Stale preference pairs derived in the background (issue 15), so a snapshot finds little left to derive.

Submits mark their item's pairs stale (`Item.pairs_stale`) and call `preference_pairs_refresh_request`,
which, once their transaction has committed, queues `preference_pairs_refresh_stale_task` for the project
at most once per `LOUPE_PAIR_REFRESH_DEBOUNCE_SECONDS` per process (a dictionary read on every other
submit: their cost stays constant). The task runs `preference_pairs_refresh_stale_batches`: the stale
items in id order, each batch in its own transaction, so a submit waits for one batch at most and a crash
loses one batch of work at most (its items stay stale). A submit to an item already refreshed marks it stale
again, and the next refresh or the snapshot derives it.

Correctness never depends on the task having run: a snapshot still derives whatever is stale when it
freezes (`preference_pairs_refresh_stale`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time

from django.conf import settings
from django.db import transaction

from annotation.models import Item, Project
from annotation.services.preference_pairs import PairsRebuilt, preference_pairs_rebuild_ids

logger = logging.getLogger(__name__)

# Items per transaction of the background refresh: at ~0.1 ms per item (bench/pair_refresh.py) a submit to
# one of them waits some 50 ms at most.
BACKGROUND_BATCH_SIZE = 500
DEFAULT_DEBOUNCE_SECONDS = 30.0

# Per project, when this process last queued a refresh (time.monotonic()).
_queued_at: dict[int, float] = {}
_queued_lock = threading.Lock()


def _debounce_seconds() -> float:
    """The debounce; 0 when background refreshes are off (`LOUPE_PAIR_REFRESH_BACKGROUND`)."""
    if not getattr(settings, "LOUPE_PAIR_REFRESH_BACKGROUND", True):
        return 0.0
    return float(getattr(settings, "LOUPE_PAIR_REFRESH_DEBOUNCE_SECONDS", DEFAULT_DEBOUNCE_SECONDS))


def preference_pairs_refresh_request(*, project_id: int) -> None:
    """Ask for a background refresh of the project's stale pairs once the caller's transaction commits
    (nothing is queued for a submit that rolls back). Constant time: a dictionary read while a refresh
    queued by this process within the debounce is pending, which is nearly always."""
    debounce = _debounce_seconds()
    if debounce <= 0:
        return
    queued = _queued_at.get(project_id)
    if queued is not None and time.monotonic() - queued < debounce:
        return
    # robust: the submit has committed by then; a broker that is down must not turn it into an error.
    transaction.on_commit(functools.partial(_refresh_enqueue, project_id, debounce), robust=True)


def _refresh_enqueue(project_id: int, debounce: float) -> None:
    now = time.monotonic()
    with _queued_lock:  # concurrent submits of one process: one of them queues
        queued = _queued_at.get(project_id)
        if queued is not None and now - queued < debounce:
            return
        _queued_at[project_id] = now
    from annotation.tasks import preference_pairs_refresh_stale_task

    try:
        # Run after the debounce, so that the burst of submits that asked for it is derived in one go.
        preference_pairs_refresh_stale_task.apply_async(args=[project_id], countdown=debounce)
    except Exception:
        with _queued_lock:  # let the next submit try again
            _queued_at.pop(project_id, None)
        raise


def preference_pairs_refresh_stale_batches(*, project_id: int, batch_size: int = BACKGROUND_BATCH_SIZE) -> PairsRebuilt:
    """Derive the pairs of the project's stale items, `batch_size` at a time in id order, each batch in its
    own transaction (`preference_pairs_rebuild`'s locking per batch). Items marked stale again behind the
    cursor stay stale for the next refresh or the snapshot; the run ends when it passes the last stale item,
    however busy the project. Nothing happens for a project that no longer exists."""
    from annotation.services.queue import queue_transaction

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return PairsRebuilt(created=0)
    created = self_pairs = 0
    after = 0

    @queue_transaction  # on SQLite, submits queue up behind a batch rather than poll SQLite's busy lock
    def batch() -> list[int]:
        nonlocal created, self_pairs
        ids = list(
            Item.objects.filter(project_id=project_id, pairs_stale=True, id__gt=after)
            .order_by("id")
            .values_list("id", flat=True)[:batch_size]
        )
        if ids:
            rebuilt = preference_pairs_rebuild_ids(project=project, item_ids=ids, batch_size=batch_size)
            created += rebuilt.created
            self_pairs += rebuilt.self_pairs_dropped
        return ids

    while ids := batch():
        after = ids[-1]
    return PairsRebuilt(created=created, self_pairs_dropped=self_pairs)
