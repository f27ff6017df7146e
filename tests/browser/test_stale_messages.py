"""Issue 18, item 10's "job and run messages that stay after the state they describe changed": on the datasets
and labeler pages, a note about a job ("Export job 3 started.", "Job 5: cancel asked.") goes once the job has
moved on, so it never sits beside a job that has since finished or failed. (The run page: see
tests/training/test_run_pages_browser.py.)"""

import json

import pytest

from annotation import services
from annotation.models import DataJob, JobStatus, LabelerJob
from annotation.services.labeler import labeler_job_start
from tests.annotation.feedback import judge, people, refresh, responses_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_export_started_note_goes_when_the_job_fails(
    page, login, live_server, pairwise_project, shapes_import, researcher, screenshot_dir
):
    services.items_import(project=pairwise_project, path=shapes_import)
    (person,) = people("judge", 1)
    for line in shapes_import.read_text().splitlines():
        truth, hallucinated = responses_of(pairwise_project, json.loads(line)["external_id"])
        judge(truth, hallucinated, person, "a")
    refresh(pairwise_project)
    snapshot = services.snapshot_create(project=pairwise_project, created_by=researcher)

    login(page, researcher)
    page.goto(f"{live_server.url}/projects/{pairwise_project.slug}/datasets/")
    page.click(f".export-form[data-snapshot='{snapshot.pk}'] button[type=submit]")
    page.wait_for_selector("#datasets-status:has-text('started')")
    job = DataJob.objects.get()
    assert page.inner_text("#datasets-status") == f"Export job {job.pk} started."

    DataJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, log="[loupe] the export failed: disk full\n")
    page.wait_for_selector(f"#jobs tr[data-job='{job.pk}'][data-status=failed]")
    assert page.inner_text("#datasets-status") == ""
    page.screenshot(path=str(screenshot_dir / "datasets-stale-note-gone.png"), full_page=True)


def test_a_cancel_asked_note_goes_when_the_labeler_job_has_stopped(
    page, login, live_server, pairwise_project, shapes_import, researcher
):
    services.items_import(project=pairwise_project, path=shapes_import, images=shapes_import.parent)
    running = labeler_job_start(project=pairwise_project, backend="local", model="tiny/running")
    LabelerJob.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING, done=2, total=12)

    login(page, researcher)
    page.goto(f"{live_server.url}/projects/{pairwise_project.slug}/labeler/")
    row = page.locator(f'tr[data-job="{running.pk}"]')
    row.locator("button[data-action=cancel]").click()
    page.wait_for_selector("#labeler-status:has-text('cancel asked')")
    assert "cancelling" in row.inner_text()

    LabelerJob.objects.filter(pk=running.pk).update(status=JobStatus.CANCELLED)
    page.wait_for_selector(f'tr[data-job="{running.pk}"][data-status=cancelled]')
    assert page.inner_text("#labeler-status") == ""
