"""The next caption of a rating project, by the project's `rating_sampling` (see `annotation.sampling`).

`uniform_candidates` and `AdaptiveChoice` give `queue._caption_take` a short list of captions for one
participant, best first; the queue takes the first whose slot is free (its conditional UPDATE), so the
overlap, the quota and the rate limit (checked before) hold as for every kind, and nobody gets a caption
twice (the candidates leave out every caption the participant was ever given, and
`assignment_once_per_unit` stands behind that).

- Uniform: one ordered read of the `(project, done_count)` index, least-rated open captions first (the
  project's own ratings: `done_count`, not imported votes).
- Adaptive: KL-LUCB over every caption's votes. Loading them (the project's own `ResponseRatingCount`s
  plus imported counts) costs ~50 ms at 10,000 captions on a loaded 2-core machine, and the first load in
  a process ~0.25 s more (it parses every caption's imported counts; they are kept until captions are
  added or removed). So each process keeps a `SamplerState` per project and reloads it when it is older
  than `LOUPE_RATING_SAMPLER_REFRESH_SECONDS` (default 2 s: the bandit sees votes up to that late, which
  at 1,000 raters a minute is ~30 votes among thousands of captions). Between reloads each lease counts as
  a provisional vote (`SamplerState.lease`), so raters asking at once spread over the undecided captions.
  A choice is then an index read of the participant's history plus vector work of about a millisecond.
  The reload runs inside the next-task transaction (on SQLite it holds the write lock meanwhile): one
  request per process every 2 s pays it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection

from annotation import sampling
from annotation.models import Assignment, Project, Response
from annotation.selectors_captions import caption_votes

SHORTLIST = 16


def _table(model: type) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _rows(query: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


@dataclass
class _Contest:
    """One project's sampler in this process."""

    key: tuple
    ids: np.ndarray
    open: np.ndarray
    state: sampling.SamplerState
    loaded_at: float


# By project id and creation time: a project made after another was deleted may reuse its id.
_contests: dict[tuple, _Contest] = {}
_lock = threading.Lock()


def _config(project: Project) -> sampling.AdaptiveConfig:
    return sampling.AdaptiveConfig(top_k=max(1, project.rating_top_k))


def _load(project: Project) -> _Contest:
    votes = caption_votes(project=project)
    levels = max(len(project.rating_levels), 2)
    if len(votes.ids):
        stats = sampling.CaptionStats.from_counts(votes.counts)
        stats.votes = stats.votes + votes.given_votes
        stats.total = stats.total + votes.given_votes * votes.given_mean
    else:
        stats = sampling.CaptionStats.empty(captions=0, levels=levels)
    units = np.array(
        _rows(
            f"SELECT id, is_open, taken_count - done_count FROM {_table(Response)} "  # noqa: S608
            "WHERE project_id = %s ORDER BY id",
            [project.pk],
        ),
        dtype=np.int64,
    ).reshape(-1, 3)
    where = np.searchsorted(units[:, 0], votes.ids) if len(units) else np.zeros(0, dtype=np.int64)
    is_open = units[where, 1].astype(bool) if len(units) else np.zeros(len(votes.ids), dtype=bool)
    # Leases given out and not answered yet count as provisional votes at the caption's mean, as
    # `SamplerState.lease` counts the ones this process gives between reloads: raters asking right after a
    # reload spread over the captions in question too.
    leased = np.maximum(units[where, 2], 0).astype(np.float64) if len(units) else np.zeros(len(votes.ids))
    prior = (1 + levels) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(stats.votes > 0, stats.total / stats.votes, prior)
    stats.votes = stats.votes + leased
    stats.total = stats.total + leased * means
    return _Contest(
        key=(project.rating_sampling, project.rating_top_k, tuple(project.rating_levels)),
        ids=votes.ids,
        open=is_open,
        state=sampling.SamplerState(sampling.ADAPTIVE, stats, _config(project)),
        loaded_at=time.monotonic(),
    )


def _contest(project: Project) -> _Contest:
    refresh = float(getattr(settings, "LOUPE_RATING_SAMPLER_REFRESH_SECONDS", 2.0))
    key = (project.pk, project.created_at)
    contest = _contests.get(key)
    if (
        contest is None
        or time.monotonic() - contest.loaded_at >= refresh
        or contest.key != (project.rating_sampling, project.rating_top_k, tuple(project.rating_levels))
    ):
        contest = _load(project)
        _contests[key] = contest
    return contest


def sampler_forget(*, project_id: int | None = None) -> None:
    """Drop this process's samplers (one project's, or all): the next choice reloads (tests, imports)."""
    with _lock:
        for key in [key for key in _contests if project_id is None or key[0] == project_id]:
            del _contests[key]


def _had(project: Project, annotator: AbstractBaseUser) -> np.ndarray:
    rows = _rows(
        f"SELECT unit_id FROM {_table(Assignment)} WHERE project_id = %s AND annotator_id = %s",  # noqa: S608
        [project.pk, annotator.pk],
    )
    return np.array([row[0] for row in rows], dtype=np.int64)


def uniform_candidates(*, project: Project, annotator: AbstractBaseUser, not_gold: str) -> list[int]:
    """Up to `SHORTLIST` open captions the participant never had, fewest ratings first.

    One ordered read of `response_done_idx` (project, done_count). Ties come in that index's order (by id on
    SQLite, whose indexes end with the row id); an `ORDER BY done_count, id` would make PostgreSQL sort every
    caption with the fewest ratings (an incremental sort reads the whole group) on every request."""
    units, assignments = _table(Response), _table(Assignment)
    rows = _rows(
        f"SELECT u.id FROM {units} u WHERE u.project_id = %s AND u.is_open {not_gold}"  # noqa: S608
        f"AND NOT EXISTS (SELECT 1 FROM {assignments} a WHERE a.project_id = %s AND a.annotator_id = %s "
        "AND a.unit_id = u.id) ORDER BY u.done_count LIMIT %s",
        [project.pk, project.pk, annotator.pk, SHORTLIST],
    )
    return [row[0] for row in rows]


class AdaptiveChoice:
    """The adaptive shortlist for one participant, and what the queue tells it back (taken or full)."""

    def __init__(self, *, project: Project, annotator: AbstractBaseUser) -> None:
        self.project = project
        had = _had(project, annotator)
        with _lock:
            self.contest = _contest(project)
            contest = self.contest
            available = contest.open.copy()
            if len(had) and len(contest.ids):
                where = np.searchsorted(contest.ids, had)
                where = np.minimum(where, len(contest.ids) - 1)
                available[where[contest.ids[where] == had]] = False
            order = contest.state.order(available=available, limit=SHORTLIST) if len(contest.ids) else []
        self.candidates = [(int(i), int(contest.ids[i])) for i in order]

    def taken(self, index: int) -> None:
        with _lock:
            self.contest.state.lease(index)

    def full(self, index: int) -> None:
        with _lock:
            self.contest.open[index] = False
