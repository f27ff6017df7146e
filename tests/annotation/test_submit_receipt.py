"""A submit's receipt (its client request id) is written before its answer (issue 15, one statement fewer per
submit): a replay still answers as the first time and stores nothing, and a request id already used for
another task is refused without storing anything for that task."""

import pytest

from annotation.models import Assignment, AssignmentStatus, PairwiseJudgment, SubmitRequest
from tests.annotation.test_queue import make_project, next_task, submit

pytestmark = pytest.mark.django_db


def test_a_request_id_used_for_another_task_is_refused_and_stores_nothing(researcher, annotator, api_client_for):
    project = make_project(researcher, [annotator], items=3)
    client = api_client_for(annotator)
    first = next_task(client, project.slug)
    stored = submit(client, project.slug, first, choice="a", client_request_id="same-id")
    assert stored.status_code == 201
    assert (
        submit(client, project.slug, first, choice="a", client_request_id="same-id").json()["id"] == stored.json()["id"]
    )

    second = next_task(client, project.slug)
    refused = submit(client, project.slug, second, choice="b", client_request_id="same-id")
    assert refused.status_code == 400
    assert "already used for another task" in refused.json()["message"]
    assert Assignment.objects.get(pk=second["assignment_id"]).status == AssignmentStatus.LEASED
    assert PairwiseJudgment.objects.count() == 1
    assert list(SubmitRequest.objects.values_list("assignment_id", flat=True)) == [first["assignment_id"]]
