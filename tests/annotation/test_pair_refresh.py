"""The background refresh of stale preference pairs (issue 15): submits ask for it once they commit, at most
once per project per debounce; it derives the stale items in batches, each in its own transaction, and
stores exactly what a derivation from scratch gives; a snapshot never depends on it having run."""

import math
import random
import uuid
from unittest import mock

import pytest
from django.test import override_settings

from annotation import services
from annotation.models import Item, PairwiseJudgment, PreferencePair
from annotation.selectors_review import feedback_reviewed
from annotation.services import pair_refresh
from annotation.services.preference_pairs import (
    ai_feedback_rewrite_record,
    feedback_load,
    pairs_for_items,
    preference_pairs_refresh_project,
    rating_scale,
)
from annotation.services.review import review_submit
from annotation.tasks import preference_pairs_refresh_stale_task
from tests.annotation.test_queue import make_project
from tests.annotation.test_submit_constant_time import (
    SHAPES,
    SUBMIT,
    _answer,
    _from_scratch,
    _snapshot_pairs,
    _submit_all,
)


@pytest.fixture(autouse=True)
def _no_refresh_queued_before():
    """The debounce remembers per process when it last queued a refresh; each test starts afresh."""
    pair_refresh._queued_at.clear()
    yield
    pair_refresh._queued_at.clear()


def _stored(project) -> list[tuple]:
    """The project's stored pairs, every field but the id and the time of writing, sorted."""
    return sorted(
        PreferencePair.objects.filter(project=project).values_list(
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
        ),
        key=repr,
    )


def _derived_from_scratch(project, *, reviewed: bool = True) -> list[tuple]:
    """What the pairs of every item must be: the rules over the full model instances (`feedback_load`), in
    the stored form, independently of the rebuild's own loading and writing (`reviewed=False`: leaving the
    reviewers' edits out)."""
    items = list(Item.objects.filter(project=project).select_related("project").order_by("id"))
    by_key = {item.external_id: item.pk for item in items}
    feedback = feedback_load(items=items)
    rows = []
    for derived in pairs_for_items(feedback_reviewed(feedback) if reviewed else feedback, scale=rating_scale(project)):
        row = derived.row
        rows.append(
            (
                by_key[row.item_key],
                row.source,
                derived.chosen_response_id,
                derived.rejected_response_id,
                row.chosen,
                row.rejected,
                row.margin if row.margin is not None and math.isfinite(row.margin) else 1.0,
                row.agreement if row.agreement is not None else 1.0,
                row.n_votes,
                [list(span) for span in row.chosen_spans],
                [list(span) for span in row.rejected_spans],
            )
        )
    return sorted(rows, key=repr)


def _submitted_project(kind, researcher, make_user, *, slug=None, seed=15):
    items, responses, overlap = SHAPES[kind]
    users = [make_user(f"pr-{slug or kind}-{i}") for i in range(overlap)]
    project = make_project(
        researcher, users, kind=kind, items=items, responses=responses, overlap=overlap, slug=slug or f"pr-{kind}"
    )
    rng = random.Random(seed)
    answered = _submit_all(project, users, rng)
    # Some annotators go back and change their answers.
    for user, assignment in answered[::3]:
        SUBMIT[kind](
            assignment_id=assignment.pk,
            annotator=user,
            client_request_id=uuid.uuid4().hex,
            **_answer(kind, assignment, rng),
        )
    return project, answered, rng


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_the_background_refresh_stores_exactly_the_pairs_of_a_derivation_from_scratch(kind, researcher, make_user):
    """After submits of each kind (and amends), the background service leaves no item stale and stores,
    field for field, the pairs the rules give over every annotation; so does a full re-derivation."""
    project, _, _ = _submitted_project(kind, researcher, make_user)
    assert not PreferencePair.objects.filter(project=project).exists()
    expected = _derived_from_scratch(project)
    assert expected, "the answers should imply some pairs"

    refreshed = pair_refresh.preference_pairs_refresh_stale_batches(project_id=project.pk, batch_size=2)
    assert refreshed.created == len(expected)
    assert not Item.objects.filter(project=project, pairs_stale=True).exists()
    assert _stored(project) == expected

    preference_pairs_refresh_project(project=project)
    assert _stored(project) == expected


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["pairwise", "correction"])
def test_a_snapshot_after_submits_holds_every_pair_though_no_background_refresh_ran(
    kind, researcher, make_user, settings, django_capture_on_commit_callbacks
):
    """Submits ask for the refresh (queued here to a fake task that never runs); the snapshot derives what
    is stale itself and holds every acknowledged annotation's pairs."""
    settings.LOUPE_PAIR_REFRESH_BACKGROUND = True
    with (
        mock.patch.object(preference_pairs_refresh_stale_task, "apply_async") as queued,
        django_capture_on_commit_callbacks(execute=True),
    ):
        project, _, _ = _submitted_project(kind, researcher, make_user, slug=f"pr-snap-{kind}")
    assert queued.call_count == 1  # asked for, never run
    assert Item.objects.filter(project=project, pairs_stale=True).count() == SHAPES[kind][0]
    assert not PreferencePair.objects.filter(project=project).exists()

    expected = _from_scratch(project)
    assert expected
    assert _snapshot_pairs(project, researcher) == expected
    assert _stored(project) == _derived_from_scratch(project)


@pytest.mark.django_db
def test_a_burst_of_100_submits_queues_one_refresh_per_project(
    researcher, make_user, settings, django_capture_on_commit_callbacks
):
    """The task's `apply_async` is a fake here (a mock that records its calls): what counts is how often
    the submits queue it, and with what delay. 100 submits within the debounce queue it once, after the
    debounce; another project gets its own; a submit after the debounce queues it again; none when off."""
    settings.LOUPE_PAIR_REFRESH_BACKGROUND = True
    settings.LOUPE_PAIR_REFRESH_DEBOUNCE_SECONDS = 30
    users = [make_user(f"burst-{i}") for i in range(4)]
    project = make_project(researcher, users, kind="pairwise", items=25, responses=2, overlap=4, slug="burst")
    other = make_project(researcher, users[:1], kind="pairwise", items=4, responses=2, slug="burst-other")
    clock = [1000.0]
    with (
        mock.patch.object(preference_pairs_refresh_stale_task, "apply_async") as queued,
        mock.patch.object(pair_refresh.time, "monotonic", side_effect=lambda: clock[0]),
    ):
        submits, asked = 0, 0
        for user in users:
            while (assignment := services.assignment_next(project=project, annotator=user)) is not None:
                with django_capture_on_commit_callbacks(execute=True) as callbacks:
                    services.pairwise_judgment_submit(
                        assignment_id=assignment.pk, annotator=user, choice="a", client_request_id=uuid.uuid4().hex
                    )
                submits += 1
                asked += len(callbacks)
                clock[0] += 0.1  # 100 submits in 10 s
        assert submits == 100
        assert asked == 1  # the other 99 only read the time it was queued
        assert queued.call_args_list == [mock.call(args=[project.pk], countdown=30.0)]

        def submit_to(target) -> None:
            assignment = services.assignment_next(project=target, annotator=users[0])
            with django_capture_on_commit_callbacks(execute=True):
                services.pairwise_judgment_submit(
                    assignment_id=assignment.pk, annotator=users[0], choice="b", client_request_id=uuid.uuid4().hex
                )

        submit_to(other)
        assert queued.call_args_list[-1] == mock.call(args=[other.pk], countdown=30.0)
        assert queued.call_count == 2
        clock[0] += 30
        submit_to(other)
        assert queued.call_count == 3

        # Two submits that both ask before either has committed (threads of one process): one is queued.
        clock[0] += 30
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            for choice in ("a", "b"):
                services.pairwise_judgment_submit(
                    assignment_id=services.assignment_next(project=other, annotator=users[0]).pk,
                    annotator=users[0],
                    choice=choice,
                    client_request_id=uuid.uuid4().hex,
                )
        assert len(callbacks) == 2
        assert queued.call_count == 4

        for off in ({"LOUPE_PAIR_REFRESH_DEBOUNCE_SECONDS": 0}, {"LOUPE_PAIR_REFRESH_BACKGROUND": False}):
            clock[0] += 60
            with override_settings(**off), django_capture_on_commit_callbacks() as callbacks:
                pair_refresh.preference_pairs_refresh_request(project_id=other.pk)
            assert callbacks == []


@pytest.mark.django_db
def test_items_marked_stale_again_during_a_refresh_stay_stale_and_a_crash_loses_one_batch(researcher, make_user):
    """Batches of 2 items, each in its own transaction. A submit to an item of the first batch after it was
    derived marks it stale again: the refresh does not go back for it, and leaves it stale (the snapshot
    derives it). A batch that fails rolls back alone: its items stay stale with their old pairs."""
    project, answered, rng = _submitted_project("pairwise", researcher, make_user, slug="pr-again")
    first_item = Item.objects.filter(project=project).order_by("id").first()
    again_user, again_assignment = next((u, a) for u, a in answered if a.item_id == first_item.pk)
    original = pair_refresh.preference_pairs_rebuild_ids
    calls = []

    def between_batches(**kwargs):
        calls.append(list(kwargs["item_ids"]))
        if len(calls) == 2:  # the first batch has committed: an annotator changes an answer to its item
            SUBMIT["pairwise"](
                assignment_id=again_assignment.pk,
                annotator=again_user,
                client_request_id=uuid.uuid4().hex,
                choice={"a": "b"}.get(PairwiseJudgment.objects.get(assignment=again_assignment).choice, "a"),
            )
        return original(**kwargs)

    with mock.patch.object(pair_refresh, "preference_pairs_rebuild_ids", side_effect=between_batches):
        pair_refresh.preference_pairs_refresh_stale_batches(project_id=project.pk, batch_size=2)
    assert calls[0][0] == first_item.pk and len(calls) == 2  # 4 items, 2 batches, no third pass
    assert list(Item.objects.filter(project=project, pairs_stale=True).values_list("id", flat=True)) == [first_item.pk]
    assert _stored(project) != _derived_from_scratch(project)  # the first item's pairs predate the change
    assert _snapshot_pairs(project, researcher) == _from_scratch(project)
    assert _stored(project) == _derived_from_scratch(project)

    # A crash in the second batch: the first batch's items are derived, the second's stay stale.
    Item.objects.filter(project=project).update(pairs_stale=True)
    before = _stored(project)
    PreferencePair.objects.filter(project=project).delete()
    calls.clear()

    def crash_in_second(**kwargs):
        calls.append(list(kwargs["item_ids"]))
        if len(calls) == 2:
            original(**kwargs)  # wrote, then fails before its transaction commits
            raise RuntimeError("worker killed")
        return original(**kwargs)

    with (
        mock.patch.object(pair_refresh, "preference_pairs_rebuild_ids", side_effect=crash_in_second),
        pytest.raises(RuntimeError),
    ):
        pair_refresh.preference_pairs_refresh_stale_batches(project_id=project.pk, batch_size=2)
    assert set(Item.objects.filter(project=project, pairs_stale=True).values_list("id", flat=True)) == set(calls[1])
    assert {row[0] for row in _stored(project)} == {row[0] for row in before if row[0] in calls[0]} != set()
    preference_pairs_refresh_stale_task(project.pk)  # the next run (the task, called here) finishes the work
    assert not Item.objects.filter(project=project, pairs_stale=True).exists()
    assert _stored(project) == before


@pytest.mark.django_db
def test_the_task_does_nothing_for_a_project_that_is_gone():
    preference_pairs_refresh_stale_task(987654)


@pytest.mark.django_db
def test_reviews_ai_feedback_and_imported_counts_are_derived_as_from_scratch(researcher, make_user):
    """The rebuild reads light rows, not model instances: a reviewer's edit (current or made stale by a
    later amend), the labeler's verdicts and rewrite, and rating counts an import stored on a response give
    the same stored pairs as the rules over the full instances."""
    project, answered, rng = _submitted_project("pairwise", researcher, make_user, slug="pr-mixed")
    reviewer = make_user("pr-reviewer")
    judgments = list(PairwiseJudgment.objects.filter(item__project=project).order_by("id"))
    for n, judgment in enumerate(judgments[:6]):
        review_submit(
            project=project,
            reviewer=reviewer,
            annotation_id=judgment.pk,
            decision="edited" if n % 2 == 0 else "accepted",
            client_request_id=f"rev-{judgment.pk}",
            edited={"choice": "b" if judgment.choice != "b" else "a"} if n % 2 == 0 else None,
        )
    user, assignment = next((u, a) for u, a in answered if a.pk == judgments[0].assignment_id)
    SUBMIT["pairwise"](assignment_id=assignment.pk, annotator=user, client_request_id="amend-after", choice="tie")
    item = Item.objects.filter(project=project).order_by("id").last()
    first, second = item.responses.order_by("position")
    verdict = services.ai_feedback_record(response=first, labeler_model="lab", claims=["x"], p_yes=[0.1])
    services.ai_feedback_record(response=second, labeler_model="lab", claims=["x"], p_yes=[0.9])
    ai_feedback_rewrite_record(feedback=verdict, text=first.text + " (rewritten)")
    for response, counts in ((first, {"unfunny": 40, "funny": 2}), (second, {"funny": 40, "unfunny": 1})):
        response.meta = {"rating_counts": counts}
        response.save(update_fields=["meta"])
    Item.objects.filter(project=project).update(pairs_stale=True)

    expected = _derived_from_scratch(project)
    assert {row[1] for row in expected} == {"pairwise", "ai", "rating"}
    assert expected != _derived_from_scratch(project, reviewed=False)  # the edits count
    pair_refresh.preference_pairs_refresh_stale_batches(project_id=project.pk, batch_size=3)
    assert _stored(project) == expected


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_derives_the_pairs_of_api_submits_before_any_snapshot(
    celery_worker_process, researcher, annotator, api_client_for, settings
):
    """The whole path with real parts: answers through the API (one request each, `submit/?next=1`) queue a
    refresh once they commit; a real Celery worker runs it after the debounce and every item's pairs are
    stored, none left stale, with no snapshot asked for."""
    import time

    settings.LOUPE_PAIR_REFRESH_BACKGROUND = True
    settings.LOUPE_PAIR_REFRESH_DEBOUNCE_SECONDS = 0.5
    project = make_project(researcher, [annotator], items=5, slug="refresh-live")
    client = api_client_for(annotator)
    task = client.post(f"/api/v1/projects/{project.slug}/tasks/next/").json()
    while task is not None:
        response = client.post(
            f"/api/v1/projects/{project.slug}/tasks/{task['assignment_id']}/submit/?next=1",
            {"client_request_id": uuid.uuid4().hex, "choice": "a"},
            format="json",
        )
        assert response.status_code == 201, response.content
        task = response.json()["next_task"]
    assert Item.objects.filter(project=project, pairs_stale=True).count() == 5  # nothing derived in the requests
    deadline = time.monotonic() + 90
    while Item.objects.filter(project=project, pairs_stale=True).exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not Item.objects.filter(project=project, pairs_stale=True).exists(), (
        celery_worker_process.log_path.read_text()[-3000:]
    )
    stored = {(p.item_id, p.chosen_text, p.rejected_text) for p in PreferencePair.objects.filter(project=project)}
    assert len(stored) == 5
    assert stored == {
        (judgment.item_id, judgment.response_a.text, judgment.response_b.text)
        for judgment in PairwiseJudgment.objects.select_related("response_a", "response_b")
    }
