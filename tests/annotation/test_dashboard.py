"""The researcher's pages: the project dashboard's figures, creating a project and changing its settings
from the page, and who may see them."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annotation import selectors
from annotation.models import Assignment, PairwiseJudgment, Project
from tests.annotation.test_queue import make_project, next_task, submit

pytestmark = [pytest.mark.django_db]


def test_the_dashboard_counts_tasks_annotators_throughput_and_time(researcher, make_user, api_client_for):
    """Progress per task and per annotator, annotations per hour and the median time per task come from
    what was submitted."""
    ann, bob = make_user("dash-ann"), make_user("dash-bob")
    project = make_project(researcher, [ann, bob], items=4, overlap=2)
    for user, spent in ((ann, [1000, 3000, 5000]), (bob, [2000])):
        client = api_client_for(user)
        for ms in spent:
            task = next_task(client, project.slug)
            assert submit(client, project.slug, task, choice="a", time_spent_ms=ms).status_code == 201
    skipped = next_task(api_client_for(bob), project.slug)
    api_client_for(bob).post(f"/api/v1/projects/{project.slug}/tasks/{skipped['assignment_id']}/skip/")
    # One answer from three hours ago shows in its own hour.
    old = Assignment.objects.filter(annotator=ann, status="submitted").order_by("id").first()
    Assignment.objects.filter(pk=old.pk).update(submitted_at=timezone.now() - timedelta(hours=3))

    stats = selectors.project_dashboard(project=project)
    assert (stats["total"], stats["finished"], stats["in_progress"], stats["untouched"]) == (4, 1, 2, 1)
    assert stats["histogram"] == [{"done": 0, "n": 1}, {"done": 1, "n": 2}, {"done": 2, "n": 1}]
    assert stats["annotations"] == 4 and stats["last_hour"] == 3
    assert [row["n"] for row in stats["per_hour"][-4:]] == [1, 0, 0, 3]
    assert stats["median_ms"] == 2500
    rows = {row["username"]: row for row in stats["annotators"]}
    assert (rows["dash-ann"]["submitted"], rows["dash-ann"]["median_ms"]) == (3, 3000)
    assert (rows["dash-bob"]["submitted"], rows["dash-bob"]["skipped"]) == (1, 1)

    client = Client()
    client.force_login(researcher)
    page = client.get(f"/projects/{project.slug}/dashboard/")
    assert page.status_code == 200
    assert b"dash-ann" in page.content and b"2.5 s" in page.content


def test_only_managers_and_staff_see_the_dashboard(researcher, annotator, outsider, admin_user):
    """The project's annotator is told the dashboard takes the manager role (403, a styled page); someone
    outside the project gets the same 404 as for a project that does not exist."""
    project = make_project(researcher, [annotator], items=1)
    client = Client()
    client.force_login(annotator)
    refused = client.get(f"/projects/{project.slug}/dashboard/")
    assert refused.status_code == 403
    assert b"manager role" in refused.content and b"Back to your projects" in refused.content
    client.force_login(outsider)
    hidden = client.get(f"/projects/{project.slug}/dashboard/")
    missing = client.get("/projects/no-such-project/dashboard/")
    assert hidden.status_code == missing.status_code == 404

    # The same page but for the path (and the log-out form's per-response CSRF token).
    def page_text(response, slug: str) -> str:
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode().replace(slug, "SLUG"))

    assert page_text(hidden, project.slug) == page_text(missing, "no-such-project")
    client.force_login(admin_user)
    assert client.get(f"/projects/{project.slug}/dashboard/").status_code == 200


def test_staff_create_a_project_from_the_page_with_its_scale(admin_user, researcher):
    """The form makes a rating project with the levels typed; a slug in use is refused on the form; the
    creator manages it; non-staff are refused; the form needs its CSRF token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    form = client.get("/projects/new/")
    token = form.cookies["csrftoken"].value
    fields = {
        "slug": "jokes",
        "name": "Jokes",
        "kind": "rating",
        "overlap": 3,
        "visibility": "public",
        "scale": "not funny\nfunny\nhilarious",
        "public_quota": 50,
        "public_rate_per_minute": 30,
        "instructions": "Rate it.",
    }
    assert client.post("/projects/new/", fields).status_code == 403
    created = client.post("/projects/new/", {**fields, "csrfmiddlewaretoken": token})
    assert created.status_code == 302 and created["Location"] == "/projects/jokes/dashboard/"
    project = Project.objects.get(slug="jokes")
    assert project.rating_levels == ["not funny", "funny", "hilarious"]
    assert (project.overlap, project.visibility, project.public_quota) == (3, "public", 50)
    again = client.post("/projects/new/", {**fields, "csrfmiddlewaretoken": token})
    assert again.status_code == 200 and b"already exists" in again.content
    other = Client()
    other.force_login(researcher)
    assert other.get("/projects/new/").status_code == 403


def test_settings_from_the_dashboard_change_the_overlap_through_the_queue(researcher, annotator, api_client_for):
    """Raising the overlap on the page puts finished tasks back into the queue."""
    project = make_project(researcher, [annotator], items=1)
    client = api_client_for(annotator)
    assert submit(client, project.slug, next_task(client, project.slug), choice="a").status_code == 201
    page = Client()
    page.force_login(researcher)
    fields = {
        "instructions": "New words",
        "overlap": 2,
        "visibility": "members",
        "public_quota": 1,
        "public_rate_per_minute": 1,
    }
    assert page.post(f"/projects/{project.slug}/dashboard/", fields).status_code == 302
    project.refresh_from_db()
    assert (project.overlap, project.instructions) == (2, "New words")
    assert project.items.get().is_open
    assert PairwiseJudgment.objects.count() == 1
