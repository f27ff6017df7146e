"""Prefetching the next task (issue 15): `tasks/next/?after=<shown>` leases the task to show after the one on
screen, so a rating page can show it the moment a key is pressed. An annotator holds at most two leases,
a reloaded page still shows the task it showed, and a crowd participant's quota counts the task on screen."""

import pytest

from annotation.models import Assignment, AssignmentStatus, Rating
from tests.annotation.test_queue import make_project, next_task, submit

pytestmark = pytest.mark.django_db


def _ahead(client, slug, task):
    response = client.post(f"/api/v1/projects/{slug}/tasks/next/?after={task['assignment_id']}")
    assert response.status_code in (200, 204), response.content
    return None if response.status_code == 204 else response.json()


def _held(user):
    return sorted(
        Assignment.objects.filter(annotator=user, status=AssignmentStatus.LEASED).values_list("pk", flat=True)
    )


def test_the_prefetched_task_is_shown_next_and_never_a_third_lease(researcher, annotator, api_client_for):
    project = make_project(researcher, [annotator], kind="rating", items=1, responses=5)
    client = api_client_for(annotator)
    shown = next_task(client, project.slug)
    ahead = _ahead(client, project.slug, shown)
    assert ahead["assignment_id"] != shown["assignment_id"]
    assert ahead["response_id"] != shown["response_id"]  # another caption, not the one on screen
    # Asking again (a second tab, a retry) gives the same prefetched task: nobody holds three.
    assert _ahead(client, project.slug, shown)["assignment_id"] == ahead["assignment_id"]
    assert _held(annotator) == sorted([shown["assignment_id"], ahead["assignment_id"]])
    # A reloaded page shows the task it showed, not the prefetched one.
    assert next_task(client, project.slug)["assignment_id"] == shown["assignment_id"]

    assert submit(client, project.slug, shown, level=2).status_code == 201
    # The prefetched task is now the one shown; the page prefetches after it: a new caption.
    third = _ahead(client, project.slug, ahead)
    assert third["response_id"] not in (shown["response_id"], ahead["response_id"])
    assert _held(annotator) == sorted([ahead["assignment_id"], third["assignment_id"]])
    assert submit(client, project.slug, ahead, level=0).status_code == 201
    rated = sorted(Rating.objects.filter(annotator=annotator).values_list("response_id", "level"))
    assert rated == sorted([(shown["response_id"], 2), (ahead["response_id"], 0)])


def test_prefetch_counts_the_task_on_screen_against_the_quota(researcher, annotator, api_client_for):
    project = make_project(
        researcher, [annotator], kind="rating", items=1, responses=5, visibility="public", public_quota=2
    )
    client = api_client_for(annotator)
    shown = next_task(client, project.slug)
    ahead = _ahead(client, project.slug, shown)
    assert ahead is not None
    assert submit(client, project.slug, shown, level=1).status_code == 201
    # One answer given, one on screen: the quota of two leaves nothing to prefetch.
    response = client.post(f"/api/v1/projects/{project.slug}/tasks/next/?after={ahead['assignment_id']}")
    assert response.status_code == 204
    assert submit(client, project.slug, ahead, level=1).status_code == 201
    response = client.post(f"/api/v1/projects/{project.slug}/tasks/next/")
    assert response.status_code == 204
    assert response["X-Queue-Reason"] == "quota"
    assert Rating.objects.filter(annotator=annotator).count() == 2


@pytest.mark.parametrize("after", ["x", "-1", "1.5", "9" * 30])
def test_a_bad_after_is_a_400_naming_it(researcher, annotator, api_client_for, after):
    project = make_project(researcher, [annotator], kind="rating", items=1, responses=2)
    response = api_client_for(annotator).post(f"/api/v1/projects/{project.slug}/tasks/next/?after={after}")
    assert response.status_code == 400
    assert "after" in response.json()["message"]
    assert not Assignment.objects.exists()
