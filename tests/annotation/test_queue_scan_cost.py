"""A next task costs the same however far the queue has got (issue 15).

The queue finds a unit by two scans of the open units: the reopened ones at or below the annotator's cursor,
then the open ones above it. Each must read the partial indexes of open units, not every unit in the id range:
on SQLite, whose planner has no statistics, the full (project, id) index won and the reopened scan alone cost
1.8 ms per task after 5,000 tasks, growing with the cursor. The work is counted as SQLite virtual-machine
steps (sqlite3's progress handler): a count, not a time, so the test is as steady as the code."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from annotation import services
from annotation.models import Assignment, Item, Response, unit_model_for
from tests.annotation.test_queue import make_project

OPEN_AT_THE_END = 20
STEP = 50  # the progress handler is called every STEP virtual-machine instructions


def _vm_steps(function, *args, **kwargs) -> tuple[int, object]:
    """How many SQLite VM instructions `function(*args, **kwargs)` runs (to within STEP), and its result."""
    connection.ensure_connection()
    raw = connection.connection
    ticks = [0]

    def tick() -> int:
        ticks[0] += 1
        return 0  # go on

    raw.set_progress_handler(tick, STEP)
    try:
        result = function(*args, **kwargs)
    finally:
        raw.set_progress_handler(None, STEP)
    return ticks[0] * STEP, result


def _queue_far_along(researcher, annotator, *, kind: str, units: int):
    """A project of `units` units where the annotator's cursor sits halfway and others have closed every unit
    but the last OPEN_AT_THE_END: both scans would cross half the project if they read closed units."""
    responses = 2 if kind == "pairwise" else 1
    project = make_project(researcher, [annotator], kind=kind, items=units, responses=responses, slug=f"far-{units}")
    model = unit_model_for(project)
    ids = list(model.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    model.objects.filter(id__in=ids[:-OPEN_AT_THE_END]).update(is_open=False)
    middle = ids[units // 2]
    response = Response.objects.get(pk=middle) if model is Response else None
    Assignment.objects.create(
        project=project,
        item=response.item if response else Item.objects.get(pk=middle),
        response=response,
        unit_id=middle,
        annotator=annotator,
        status="submitted",
        lease_expires_at=timezone.now() - timedelta(minutes=1),
        submitted_at=timezone.now(),
    )
    return project, ids


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["pairwise", "correction"])
def test_a_next_task_reads_as_much_at_200_units_as_at_4000(kind, researcher, annotator):
    if connection.vendor != "sqlite":
        pytest.skip("counts SQLite's VM steps; PostgreSQL plans the partial indexes by their statistics")
    steps = {}
    for units in (200, 4000):
        project, ids = _queue_far_along(researcher, annotator, kind=kind, units=units)
        steps[units], given = _vm_steps(services.assignment_next, project=project, annotator=annotator)
        # The lowest open unit above the cursor: every unit before the last OPEN_AT_THE_END is closed.
        assert given.unit_id == ids[-OPEN_AT_THE_END]
    # Reading the closed units between would be ~1,900 more rows at 4,000 units (tens of thousands of steps).
    assert steps[4000] < steps[200] * 1.5 + 2000, steps
