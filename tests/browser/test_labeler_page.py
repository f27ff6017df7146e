"""The AI labeler page in a real browser: reached from the dashboard, it starts a job through the API, lists
jobs with their live progress, cancels and resumes them, and shows server text as text."""

import pytest

from annotation.models import JobStatus, LabelerJob
from annotation.services.labeler import labeler_job_start

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE = '<img src=x onerror="document.body.dataset.hacked=1">'


def test_a_manager_starts_watches_cancels_and_resumes_labeler_jobs(
    page, login, live_server, pairwise_project, shapes_import, researcher, screenshot_dir
):
    """From the dashboard's link: a failed job shows its log as text and can be resumed; a job started with
    the form appears queued and can be cancelled; a running job's progress updates without a reload."""
    from annotation import services

    services.items_import(project=pairwise_project, path=shapes_import, images=shapes_import.parent)
    failed = labeler_job_start(project=pairwise_project, backend="local", model="tiny/labeler")
    LabelerJob.objects.filter(pk=failed.pk).update(
        status=JobStatus.FAILED, log=f"[loupe] the labeler failed: answered {HOSTILE}\n"
    )
    running = labeler_job_start(project=pairwise_project, backend="local", model="tiny/running")
    LabelerJob.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING, done=2, total=12)

    login(page, researcher)
    page.goto(f"{live_server.url}/projects/{pairwise_project.slug}/dashboard/")
    page.click("text=AI labeler")
    page.wait_for_url(f"{live_server.url}/projects/{pairwise_project.slug}/labeler/")
    failed_row = page.locator(f'tr[data-job="{failed.pk}"]')
    failed_row.locator("button[data-action=resume]").wait_for()
    assert HOSTILE in failed_row.inner_text()
    assert page.locator("#labeler-jobs img").count() == 0
    assert page.evaluate("document.body.dataset.hacked") is None

    # The server's address field shows only for the server backend.
    assert page.locator("#base-url-field").is_hidden()
    page.select_option("select[name=backend]", "openai")
    assert page.locator("#base-url-field").is_visible()
    page.select_option("select[name=backend]", "local")

    page.fill("input[name=model]", "tiny/started-here")
    page.fill("input[name=batch_size]", "4")
    page.click("#labeler-form button[type=submit]")
    page.wait_for_selector("#labeler-status.ok")
    started = LabelerJob.objects.get(model="tiny/started-here")
    assert (started.status, started.config, started.total, started.backend) == (
        "queued",
        {"batch_size": 4},
        12,
        "local",
    )
    started_row = page.locator(f'tr[data-job="{started.pk}"]')
    assert "queued" in started_row.inner_text()

    # Live progress of the running job, without a reload.
    running_row = page.locator(f'tr[data-job="{running.pk}"]')
    assert "2 / 12" in running_row.inner_text()
    LabelerJob.objects.filter(pk=running.pk).update(done=7)
    page.wait_for_function(
        f"() => document.querySelector('tr[data-job=\"{running.pk}\"]').textContent.includes('7 / 12')"
    )

    started_row.locator("button[data-action=cancel]").click()
    page.wait_for_selector(f'tr[data-job="{started.pk}"][data-status=cancelled]')
    started.refresh_from_db()
    assert started.status == JobStatus.CANCELLED
    failed_row.locator("button[data-action=resume]").click()
    page.wait_for_selector(f'tr[data-job="{failed.pk}"][data-status=queued]')
    failed.refresh_from_db()
    assert failed.status == JobStatus.QUEUED and "resume requested" in failed.log
    page.screenshot(path=str(screenshot_dir / "labeler.png"), full_page=True)


def test_the_labeler_page_is_for_managers_only(client, pairwise_project, annotator, researcher):
    """The annotator is told it takes the manager role (403); the manager sees the page and the dashboard
    links to it."""
    client.force_login(annotator)
    assert client.get(f"/projects/{pairwise_project.slug}/labeler/").status_code == 403
    client.force_login(researcher)
    assert client.get(f"/projects/{pairwise_project.slug}/labeler/").status_code == 200
    assert (
        f"/projects/{pairwise_project.slug}/labeler/"
        in client.get(f"/projects/{pairwise_project.slug}/dashboard/").content.decode()
    )
