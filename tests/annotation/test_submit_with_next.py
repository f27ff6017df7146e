"""Answer and take the next task in one request (issue 15): `submit/?next=1` stores the answer, then leases
the next task and returns it as `next_task` (`next_empty` says why when there is none). One round trip
per annotation instead of two; the answer is stored whatever happens to the next task."""

import uuid

import pytest

from annotation.models import Assignment, AssignmentStatus, PairwiseJudgment, Rating
from tests.annotation.test_queue import make_project, next_task

pytestmark = pytest.mark.django_db


def _submit_next(client, slug, task, *, after=None, **answer):
    query = "next=1" + (f"&after={after['assignment_id']}" if after else "")
    body = {"client_request_id": answer.pop("client_request_id", uuid.uuid4().hex), **answer}
    return client.post(f"/api/v1/projects/{slug}/tasks/{task['assignment_id']}/submit/?{query}", body, format="json")


def _held(user):
    return sorted(
        Assignment.objects.filter(annotator=user, status=AssignmentStatus.LEASED).values_list("pk", flat=True)
    )


def test_a_whole_queue_is_answered_with_one_request_per_task(researcher, annotator, api_client_for):
    project = make_project(researcher, [annotator], items=4)
    client = api_client_for(annotator)
    task, items = next_task(client, project.slug), []
    while task is not None:
        items.append(task["item_id"])
        response = _submit_next(client, project.slug, task, choice="a")
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["assignment_id"] == task["assignment_id"] and body["choice"] == "a"
        task = body["next_task"]
        assert _held(annotator) == ([task["assignment_id"]] if task else [])  # never more than the one shown
        if task is None:
            assert body["next_empty"]["reason"] == "all_done"
            assert "Thank you" in body["next_empty"]["message"]
        else:
            assert body["next_empty"] is None
            assert task["kind"] == "pairwise" and len(task["responses"]) == 2
    assert sorted(items) == sorted(project.items.values_list("pk", flat=True))  # each task once
    assert PairwiseJudgment.objects.filter(annotator=annotator).count() == 4


def test_without_next_the_answer_is_as_before(researcher, annotator, api_client_for):
    project = make_project(researcher, [annotator], items=2)
    client = api_client_for(annotator)
    task = next_task(client, project.slug)
    body = client.post(
        f"/api/v1/projects/{project.slug}/tasks/{task['assignment_id']}/submit/",
        {"client_request_id": "x1", "choice": "b"},
        format="json",
    ).json()
    assert "next_task" not in body and "next_empty" not in body
    assert _held(annotator) == []


def test_a_resent_answer_is_stored_once_and_gets_the_same_next_task(researcher, annotator, api_client_for):
    project = make_project(researcher, [annotator], items=3)
    client = api_client_for(annotator)
    task = next_task(client, project.slug)
    first = _submit_next(client, project.slug, task, choice="a", client_request_id="same").json()
    again = _submit_next(client, project.slug, task, choice="a", client_request_id="same")
    assert again.status_code == 201
    assert again.json()["id"] == first["id"]
    # The next task of the first reply is still held: the resend is given it back, not a second lease.
    assert again.json()["next_task"]["assignment_id"] == first["next_task"]["assignment_id"]
    assert _held(annotator) == [first["next_task"]["assignment_id"]]
    assert PairwiseJudgment.objects.filter(annotator=annotator).count() == 1


def test_with_after_the_task_after_the_prefetched_one_comes_back(researcher, annotator, api_client_for):
    project = make_project(researcher, [annotator], kind="rating", items=1, responses=5)
    client = api_client_for(annotator)
    shown = next_task(client, project.slug)
    ahead = client.post(f"/api/v1/projects/{project.slug}/tasks/next/?after={shown['assignment_id']}").json()
    # The page shows `ahead` the moment the key is pressed; the answer to `shown` brings the one after it.
    third = _submit_next(client, project.slug, shown, after=ahead, level=2).json()["next_task"]
    assert third["response_id"] not in (shown["response_id"], ahead["response_id"])
    assert _held(annotator) == sorted([ahead["assignment_id"], third["assignment_id"]])
    assert list(Rating.objects.filter(annotator=annotator).values_list("response_id", "level")) == [
        (shown["response_id"], 2)
    ]


def test_a_crowd_participant_over_the_rate_limit_keeps_the_answer_and_is_told_why(
    researcher, annotator, api_client_for
):
    project = make_project(
        researcher, [annotator], kind="rating", items=1, responses=5, visibility="public", public_rate_per_minute=1
    )
    client = api_client_for(annotator)
    task = next_task(client, project.slug)
    response = _submit_next(client, project.slug, task, level=1)
    assert response.status_code == 201  # the answer is stored: a 429 here would make the page send it again
    body = response.json()
    assert body["next_task"] is None
    assert body["next_empty"]["reason"] == "rate_limited" and "faster" in body["next_empty"]["message"]
    assert Rating.objects.filter(annotator=annotator).count() == 1


def test_the_quota_ends_the_queue_in_the_answer(researcher, annotator, api_client_for):
    project = make_project(
        researcher, [annotator], kind="rating", items=1, responses=5, visibility="public", public_quota=1
    )
    client = api_client_for(annotator)
    body = _submit_next(client, project.slug, next_task(client, project.slug), level=0).json()
    assert body["next_task"] is None and body["next_empty"]["reason"] == "quota"


@pytest.mark.parametrize(("query", "body"), [("next=1&after=x", {"choice": "a"}), ("next=1", {"choice": "z"})])
def test_a_refused_request_stores_nothing_and_leases_nothing(researcher, annotator, api_client_for, query, body):
    project = make_project(researcher, [annotator], items=3)
    client = api_client_for(annotator)
    task = next_task(client, project.slug)
    response = client.post(
        f"/api/v1/projects/{project.slug}/tasks/{task['assignment_id']}/submit/?{query}",
        {"client_request_id": "r1", **body},
        format="json",
    )
    assert response.status_code == 400
    assert not PairwiseJudgment.objects.exists()
    assert _held(annotator) == [task["assignment_id"]]
