"""Every API endpoint as named users: who may see and do what, including the forbidden cases."""

import pytest

from annotation import services

pytestmark = [pytest.mark.django_db, pytest.mark.production_path]


@pytest.fixture
def project_with_items(pairwise_project, shapes_import):
    services.items_import(project=pairwise_project, path=shapes_import)
    return pairwise_project


def test_unauthenticated_calls_are_refused(client, project_with_items):
    """Without a token or session the API answers 401/403 and shows nothing."""
    for url in ("/api/v1/projects/", "/api/v1/projects/shapes-pairwise/", "/api/v1/training-runs/"):
        assert client.get(url).status_code in (401, 403)
    assert client.post("/api/v1/projects/shapes-pairwise/tasks/next/").status_code in (401, 403)


def test_a_member_sees_the_project_and_an_outsider_gets_404(project_with_items, annotator, outsider, api_client_for):
    """An annotator sees their project and its progress; someone else's member gets the same 404 as a typo."""
    member = api_client_for(annotator).get("/api/v1/projects/shapes-pairwise/")
    assert member.status_code == 200
    assert member.json()["progress"] == {"done": 0, "total": 6, "mine": 0}
    assert api_client_for(outsider).get("/api/v1/projects/shapes-pairwise/").status_code == 404
    assert api_client_for(outsider).get("/api/v1/projects/").json() == []
    assert [p["slug"] for p in api_client_for(annotator).get("/api/v1/projects/").json()] == ["shapes-pairwise"]


def test_an_outsider_cannot_take_or_submit_tasks(project_with_items, annotator, outsider, api_client_for):
    """Tasks of a project are out of reach for non-members, and an assignment only for its holder."""
    assert api_client_for(outsider).post("/api/v1/projects/shapes-pairwise/tasks/next/").status_code == 404
    task = api_client_for(annotator).post("/api/v1/projects/shapes-pairwise/tasks/next/").json()
    body = {"choice": "a", "client_request_id": "x1"}
    url = f"/api/v1/projects/shapes-pairwise/tasks/{task['assignment_id']}/submit/"
    assert api_client_for(outsider).post(url, body, format="json").status_code == 404


def test_another_annotator_cannot_submit_my_task(project_with_items, annotator, make_user, api_client_for):
    """A second member of the same project may not answer a task leased to the first."""
    colleague = make_user("cora-colleague")
    services.project_member_add(project=project_with_items, user=colleague)
    task = api_client_for(annotator).post("/api/v1/projects/shapes-pairwise/tasks/next/").json()
    url = f"/api/v1/projects/shapes-pairwise/tasks/{task['assignment_id']}/submit/"
    response = api_client_for(colleague).post(url, {"choice": "a", "client_request_id": "c1"}, format="json")
    assert response.status_code == 400
    assert response.json()["message"] == "This task is not yours."


def test_only_managers_import_snapshot_and_list_items(project_with_items, annotator, researcher, api_client_for):
    """Annotators cannot import, list items, freeze or download snapshots; the project's manager can."""
    for method, url in (
        ("get", "/api/v1/projects/shapes-pairwise/items/"),
        ("get", "/api/v1/projects/shapes-pairwise/snapshots/"),
        ("post", "/api/v1/projects/shapes-pairwise/snapshots/"),
        ("post", "/api/v1/projects/shapes-pairwise/imports/"),
    ):
        assert getattr(api_client_for(annotator), method)(url).status_code == 404, url
    items = api_client_for(researcher).get("/api/v1/projects/shapes-pairwise/items/")
    assert items.status_code == 200 and items.json()["count"] == 6


def test_only_staff_create_projects_and_see_training(project_with_items, researcher, admin_user, api_client_for):
    """Project creation and training runs are for admins."""
    body = {"slug": "new-one", "kind": "rating"}
    refused = api_client_for(researcher).post("/api/v1/projects/", body, format="json")
    assert refused.status_code == 403
    assert api_client_for(researcher).get("/api/v1/training-runs/").status_code == 404
    created = api_client_for(admin_user).post("/api/v1/projects/", body, format="json")
    assert created.status_code == 201 and created.json()["rating_levels"] == ["unfunny", "somewhat funny", "funny"]
    assert api_client_for(admin_user).get("/api/v1/training-runs/").status_code == 200


def test_a_submission_sent_twice_is_stored_once(project_with_items, annotator, api_client_for):
    """A double click (same client request id) stores one judgment and counts the item once."""
    from annotation.models import Item, PairwiseJudgment

    client = api_client_for(annotator)
    task = client.post("/api/v1/projects/shapes-pairwise/tasks/next/").json()
    url = f"/api/v1/projects/shapes-pairwise/tasks/{task['assignment_id']}/submit/"
    first = client.post(url, {"choice": "b", "client_request_id": "same"}, format="json")
    second = client.post(url, {"choice": "b", "client_request_id": "same"}, format="json")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert PairwiseJudgment.objects.count() == 1
    assert Item.objects.get(pk=task["item_id"]).done_count == 1


def test_the_shown_order_is_recorded_and_pairs_follow_it(project_with_items, annotator, api_client_for):
    """Choosing the left answer makes the left answer (as shown) the chosen side of the pair."""
    from annotation.models import PreferencePair

    client = api_client_for(annotator)
    task = client.post("/api/v1/projects/shapes-pairwise/tasks/next/").json()
    url = f"/api/v1/projects/shapes-pairwise/tasks/{task['assignment_id']}/submit/"
    assert client.post(url, {"choice": "a", "client_request_id": "r1"}, format="json").status_code == 201
    services.preference_pairs_refresh_stale(project=project_with_items)
    pair = PreferencePair.objects.get(item_id=task["item_id"])
    assert pair.chosen_text == task["responses"][0]["text"]
    assert pair.rejected_text == task["responses"][1]["text"]


def test_item_images_are_served_to_members_only(project_with_items, annotator, outsider, client):
    """An item's image is a protected download, not a public media file."""
    task_item = project_with_items.items.order_by("id").first()
    url = f"/items/{task_item.pk}/image"
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    client.force_login(annotator)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"


def test_the_openapi_schema_describes_the_api(admin_user, api_client_for):
    """The schema lists the task endpoints, and the docs page loads without any CDN."""
    schema = api_client_for(admin_user).get("/api/v1/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/projects/{slug}/tasks/next/" in paths
    assert "/api/v1/training-runs/" in paths
    docs = api_client_for(admin_user).get("/api/v1/docs/")
    assert docs.status_code == 200 and b"cdn" not in docs.content.lower()


# ------------------------------------------------------------------------------ crowd participants


@pytest.fixture
def public_rating(researcher):
    from tests.annotation.test_queue import make_project

    return make_project(
        researcher,
        [],
        kind="rating",
        items=1,
        responses=6,
        overlap=50,
        slug="crowd-rating",
        visibility="public",
        public_quota=4,
        public_rate_per_minute=3,
    )


def _csrf_client():
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.get("/")  # no cookie yet: the crowd page sets the CSRF cookie
    return client


def test_an_anonymous_visitor_of_a_public_project_becomes_a_participant_by_cookie(public_rating):
    """The crowd page needs no account; the first task creates an inactive participant and a signed
    HttpOnly cookie, and later calls are that participant (CSRF-checked like a session)."""
    from annotation.models import CrowdParticipant

    client = _csrf_client()
    page = client.get("/crowd/crowd-rating/")
    assert page.status_code == 200
    token = page.cookies["csrftoken"].value
    assert client.post("/api/v1/projects/crowd-rating/tasks/next/").status_code == 403, "no CSRF token"
    first = client.post("/api/v1/projects/crowd-rating/tasks/next/", HTTP_X_CSRFTOKEN=token)
    assert first.status_code == 200
    cookie = first.cookies["loupe_participant"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    participant = CrowdParticipant.objects.select_related("user").get()
    assert not participant.user.is_active and not participant.user.has_usable_password()
    again = client.post("/api/v1/projects/crowd-rating/tasks/next/", HTTP_X_CSRFTOKEN=token)
    assert again.json()["assignment_id"] == first.json()["assignment_id"]
    assert CrowdParticipant.objects.count() == 1
    url = f"/api/v1/projects/crowd-rating/tasks/{first.json()['assignment_id']}/submit/"
    body = {"level": 2, "client_request_id": "c1"}
    assert client.post(url, body, content_type="application/json").status_code == 403, "no CSRF token"
    stored = client.post(url, body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert stored.status_code == 201


def test_a_participant_has_a_quota_and_a_rate_limit(public_rating, settings):
    """After `public_rate_per_minute` tasks in a minute the next one waits (429); after `public_quota`
    answers the queue says the limit is reached."""
    from annotation.models import Assignment

    client = _csrf_client()
    token = client.get("/crowd/crowd-rating/").cookies["csrftoken"].value
    for n in range(4):
        task = client.post("/api/v1/projects/crowd-rating/tasks/next/", HTTP_X_CSRFTOKEN=token)
        if n == 3:
            assert task.status_code == 429 and "wait a minute" in task.json()["message"]
            Assignment.objects.update(created_at=Assignment.objects.first().created_at.replace(year=2000))
            task = client.post("/api/v1/projects/crowd-rating/tasks/next/", HTTP_X_CSRFTOKEN=token)
        assert task.status_code == 200
        url = f"/api/v1/projects/crowd-rating/tasks/{task.json()['assignment_id']}/submit/"
        answer = client.post(
            url, {"level": 1, "client_request_id": f"q{n}"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
        )
        assert answer.status_code == 201
    done = client.post("/api/v1/projects/crowd-rating/tasks/next/", HTTP_X_CSRFTOKEN=token)
    assert done.status_code == 204 and done["X-Queue-Reason"] == "quota"
    assert "limit of 4" in done["X-Queue-Message"]


def test_a_participant_reaches_nothing_but_public_annotation(public_rating, project_with_items, researcher):
    """The participant cookie opens the public project's tasks only: not members' projects, not their
    images, not dashboards or imports, not the project list; a forged cookie is nobody."""
    client = _csrf_client()
    token = client.get("/crowd/crowd-rating/").cookies["csrftoken"].value
    assert client.post("/api/v1/projects/crowd-rating/tasks/next/", HTTP_X_CSRFTOKEN=token).status_code == 200
    members_item = project_with_items.items.order_by("id").first()
    assert client.post("/api/v1/projects/shapes-pairwise/tasks/next/", HTTP_X_CSRFTOKEN=token).status_code == 404
    assert client.get(f"/items/{members_item.pk}/image").status_code == 404
    public_item = public_rating.items.get()
    public_item.image = members_item.image
    public_item.save()
    assert client.get(f"/items/{public_item.pk}/image").status_code == 200
    assert client.get("/projects/crowd-rating/dashboard/").status_code == 302  # to the login page
    assert client.get("/api/v1/projects/crowd-rating/stats/").status_code in (401, 403)
    assert client.get("/crowd/shapes-pairwise/").status_code == 404
    forged = _csrf_client()
    forged.cookies["loupe_participant"] = "eyJ1c2VyIjoxfQ:forged:signature"
    forged_token = forged.get("/crowd/crowd-rating/").cookies["csrftoken"].value
    from annotation.models import CrowdParticipant

    before = CrowdParticipant.objects.count()
    forged.post("/api/v1/projects/crowd-rating/tasks/next/", HTTP_X_CSRFTOKEN=forged_token)
    assert CrowdParticipant.objects.count() == before + 1, "a forged cookie is a new participant, not user 1"
    forged.cookies["loupe_participant"] = f"{researcher.pk}.any-token"
    assert forged.get("/api/v1/projects/crowd-rating/tasks/progress/").status_code in (401, 403), (
        "a cookie naming an ordinary account authenticates nobody"
    )


def test_members_only_projects_refuse_anonymous_visitors(project_with_items, client):
    assert client.get("/crowd/shapes-pairwise/").status_code == 404
    assert client.post("/api/v1/projects/shapes-pairwise/tasks/next/").status_code in (401, 403)


# --------------------------------------------------------------------------- more forbidden cases


def test_tasks_of_others_are_out_of_reach(project_with_items, annotator, make_user, api_client_for):
    """Another member cannot read, skip or go back to my task, and `before` cannot point at theirs."""
    colleague = make_user("cora-colleague")
    services.project_member_add(project=project_with_items, user=colleague)
    mine = api_client_for(annotator).post("/api/v1/projects/shapes-pairwise/tasks/next/").json()
    other = api_client_for(colleague)
    base = f"/api/v1/projects/shapes-pairwise/tasks/{mine['assignment_id']}"
    assert other.get(f"{base}/").status_code == 404
    assert other.post(f"{base}/skip/").status_code == 400
    previous = other.get("/api/v1/projects/shapes-pairwise/tasks/previous/", {"before": mine["assignment_id"]})
    assert previous.status_code == 204


def test_only_managers_see_stats_and_change_settings(project_with_items, annotator, researcher, api_client_for):
    assert api_client_for(annotator).get("/api/v1/projects/shapes-pairwise/stats/").status_code == 404
    refused = api_client_for(annotator).patch("/api/v1/projects/shapes-pairwise/", {"overlap": 3}, format="json")
    assert refused.status_code == 404
    stats = api_client_for(researcher).get("/api/v1/projects/shapes-pairwise/stats/")
    assert stats.status_code == 200 and stats.json()["total"] == 6
    changed = api_client_for(researcher).patch("/api/v1/projects/shapes-pairwise/", {"overlap": 3}, format="json")
    assert changed.status_code == 200 and changed.json()["overlap"] == 3


def test_session_writes_need_the_csrf_token(project_with_items, annotator):
    """A logged-in browser session cannot be made to take or answer tasks from another site."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(annotator)
    assert client.post("/api/v1/projects/shapes-pairwise/tasks/next/").status_code == 403
    token = client.get("/projects/shapes-pairwise/annotate/").cookies["csrftoken"].value
    assert client.post("/api/v1/projects/shapes-pairwise/tasks/next/", HTTP_X_CSRFTOKEN=token).status_code == 200
