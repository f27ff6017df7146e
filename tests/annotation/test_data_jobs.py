"""Large imports and exports as background jobs: progress, results to download, failures, cancellation."""

import datetime as dt
import io
import json
import zipfile

import pytest
from django.utils import timezone

from annotation import services
from annotation.models import DataJob, Item
from annotation.services.jobs import CANCEL_FILE, PROGRESS_FILE, job_dir
from tests.annotation.feedback import judge, people, project_with_items, refresh, responses_of
from tests.helpers import wait_for


def _items_file(path, n, *, bad_line=None):
    lines = []
    for i in range(n):
        responses = [{"text": f"answer {i}"}, {"text": f"other answer {i}"}]
        record = {"external_id": f"x{i}", "prompt": f"Question {i}?", "responses": responses}
        if i + 1 == bad_line:
            record["responses"] = [{"text": ""}]
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def judged_snapshot(researcher):
    project = project_with_items(
        "jobs", "pairwise", {f"i{i}": [f"good {i}", f"bad {i}"] for i in range(30)}, created_by=researcher
    )
    (person,) = people("judge", 1)
    for i in range(30):
        good, bad = responses_of(project, f"i{i}")
        judge(good, bad, person, "a")
    refresh(project)
    return services.snapshot_create(project=project, created_by=None)


@pytest.mark.django_db(transaction=True)
def test_an_export_job_runs_on_a_real_worker_and_its_zip_downloads(
    celery_worker_process, judged_snapshot, researcher, api_client_for
):
    """The API queues the job, the worker writes the export, and the finished job's zip holds it."""
    client = api_client_for(researcher)
    started = client.post(
        f"/api/v1/snapshots/{judged_snapshot.pk}/export-jobs/", {"format": "dense-jsonl"}, format="json"
    )
    assert started.status_code == 202, started.content
    job_id = started.json()["id"]
    assert started.json()["status"] == "queued" and started.json()["download_url"] is None

    def finished():
        body = client.get(f"/api/v1/jobs/{job_id}/").json()
        return body if body["status"] in ("succeeded", "failed") else None

    body = wait_for(finished, timeout=60, message="the export job to finish")
    assert body["status"] == "succeeded", body["log"] + celery_worker_process.log_path.read_text()[-2000:]
    assert (body["done"], body["total"], body["progress"]) == (30, 30, 1.0)
    assert body["result"]["manifest"]["snapshot_hash"] == judged_snapshot.content_hash
    download = client.get(body["download_url"])
    assert download.status_code == 200
    bundle = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    lines = bundle.read("pairs.jsonl").decode().splitlines()
    assert len(lines) == 30 and json.loads(lines[0])["chosen"].startswith("good")
    listed = client.get(f"/api/v1/projects/{judged_snapshot.project.slug}/jobs/").json()
    assert [job["id"] for job in listed] == [job_id]


@pytest.mark.django_db
def test_an_import_job_records_progress_and_its_report(pairwise_project, researcher, tmp_path):
    """The worker's run stores every item and leaves the import report as the job's result."""
    source = _items_file(tmp_path / "items.jsonl", 4500)
    job = services.data_job_import_start(
        project=pairwise_project, source=source, import_format="loupe-jsonl", created_by=researcher
    )
    assert not source.exists(), "the upload moved into the job's folder"
    services.data_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded", job.log
    assert job.result == services.ImportReport(created=4500, unchanged=0).as_dict()
    assert (job.done, job.total) == (4500, 4500)
    assert Item.objects.filter(project=pairwise_project).count() == 4500
    assert not job_dir(job).exists()
    services.data_job_execute(job_id=job.pk)  # a second delivery finds the job done and does nothing
    assert Item.objects.filter(project=pairwise_project).count() == 4500


@pytest.mark.django_db
def test_a_failing_import_job_logs_the_line_and_stores_nothing(pairwise_project, researcher, tmp_path, api_client_for):
    """A bad line fails the job with the line and field in its log; the download says there is nothing."""
    source = _items_file(tmp_path / "items.jsonl", 50, bad_line=37)
    job = services.data_job_import_start(project=pairwise_project, source=source, import_format="loupe-jsonl")
    services.data_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert "line 37" in job.log and "responses[0].text" in job.log
    assert not Item.objects.exists()
    response = api_client_for(researcher).get(f"/api/v1/jobs/{job.pk}/download/")
    assert response.status_code == 400 and "Only export jobs" in response.json()["message"]


@pytest.mark.django_db
def test_a_cancel_stops_a_running_import_and_keeps_nothing(pairwise_project, tmp_path):
    """A cancel arriving while the worker runs (the cancel note in the job's folder) rolls the import back."""
    source = _items_file(tmp_path / "items.jsonl", 3000)
    job = services.data_job_import_start(project=pairwise_project, source=source, import_format="loupe-jsonl")
    job_dir(job).mkdir(parents=True, exist_ok=True)
    (job_dir(job) / CANCEL_FILE).touch()
    services.data_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "cancelled" and "nothing kept" in job.log
    assert not Item.objects.exists()


@pytest.mark.django_db
def test_cancelling_a_queued_job_ends_it_and_a_finished_one_cannot_be(judged_snapshot, researcher, api_client_for):
    """A queued export ends at once; cancelling it again is refused."""
    job = services.data_job_export_start(snapshot=judged_snapshot, export_format="trl-jsonl")
    client = api_client_for(researcher)
    assert client.post(f"/api/v1/jobs/{job.pk}/cancel/").json()["status"] == "cancelled"
    services.data_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "cancelled" and job.result_path == ""
    assert client.post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 400


@pytest.mark.django_db
def test_a_running_import_reports_the_progress_its_worker_notes(pairwise_project, researcher, api_client_for, tmp_path):
    """While an import holds its transaction, its progress comes from the worker's note beside the job."""
    job = services.data_job_import_start(
        project=pairwise_project, source=_items_file(tmp_path / "i.jsonl", 3), import_format="loupe-jsonl"
    )
    DataJob.objects.filter(pk=job.pk).update(status="running", heartbeat_at=timezone.now() - dt.timedelta(seconds=5))
    (job_dir(job) / PROGRESS_FILE).write_text(json.dumps({"done": 40, "total": 160, "at": timezone.now().timestamp()}))
    body = api_client_for(researcher).get(f"/api/v1/jobs/{job.pk}/").json()
    assert (body["done"], body["total"], body["progress"]) == (40, 160, 0.25)
    assert "source" not in body["params"]


@pytest.mark.django_db
def test_jobs_of_a_dead_worker_are_marked_failed(pairwise_project, tmp_path, settings):
    """A running job whose heartbeat stopped longer ago than the timeout is failed by the reaper."""
    job = services.data_job_import_start(
        project=pairwise_project, source=_items_file(tmp_path / "i.jsonl", 3), import_format="loupe-jsonl"
    )
    stale = timezone.now() - dt.timedelta(seconds=settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS + 60)
    DataJob.objects.filter(pk=job.pk).update(status="running", heartbeat_at=stale)
    assert services.data_jobs_reap_dead() == 1
    job.refresh_from_db()
    assert job.status == "failed" and "worker died" in job.log


@pytest.mark.django_db
def test_an_import_job_starts_from_an_upload(pairwise_project, researcher, api_client_for, tmp_path):
    """A multipart upload to the import-jobs endpoint queues a job with its format."""
    upload = {"format": "loupe-jsonl", "file": io.BytesIO(_items_file(tmp_path / "u.jsonl", 5).read_bytes())}
    upload["file"].name = "u.jsonl"
    response = api_client_for(researcher).post(
        f"/api/v1/projects/{pairwise_project.slug}/import-jobs/", upload, format="multipart"
    )
    assert response.status_code == 202, response.content
    job = DataJob.objects.get(pk=response.json()["id"])
    assert job.params["format"] == "loupe-jsonl" and job.status == "queued"
    services.data_job_execute(job_id=job.pk)
    assert Item.objects.filter(project=pairwise_project).count() == 5
