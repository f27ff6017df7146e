"""Issue 16, "Prove it" (faults): a real Celery worker process killed (SIGKILL) in the middle of an import. The
broker does not hand its task to anyone again (stack-notes), so the job's row and heartbeat tell: once the
heartbeat is older than the timeout, the next read ends the job failed with a one-line cause; nothing of the
half-done import is in the database (its transaction died with the process), and importing the file again
stores all of it once."""

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from annotation import services
from annotation.models import DataJob, Item, Response

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.production_path]

N_ITEMS = 100_000


def _big_import(path):
    with path.open("w") as handle:
        for i in range(N_ITEMS):
            line = {"external_id": f"k{i}", "prompt": f"Q{i}?", "responses": [{"text": f"a {i}"}, {"text": f"b {i}"}]}
            handle.write(json.dumps(line) + "\n")
    return path


def _wait(condition, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_a_worker_killed_mid_import_leaves_a_failed_job_nothing_stored_and_the_import_can_run_again(
    celery_worker_process, pairwise_project, researcher, api_client_for, tmp_path, settings
):
    source = _big_import(tmp_path / "items.jsonl")
    keep = tmp_path / "again.jsonl"
    shutil.copy(source, keep)  # the job moves its upload into its folder
    job = services.data_job_import_start(
        project=pairwise_project, source=source, import_format="loupe-jsonl", created_by=researcher
    )
    api = api_client_for(researcher)

    # Mid-import: the worker has stored at least one batch inside its (still open) transaction.
    def mid_import():
        body = api.get(f"/api/v1/jobs/{job.pk}/").json()
        assert body["status"] in ("queued", "running"), body
        return body if body["status"] == "running" and body["done"] > 0 else None

    body = _wait(
        mid_import, timeout=120, what="the worker to report progress\n" + celery_worker_process.log_path.read_text()
    )
    assert body["done"] < N_ITEMS, body
    os.killpg(celery_worker_process.pid, signal.SIGKILL)
    celery_worker_process.wait(timeout=10)

    settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS = 2  # rather than waiting the production two minutes
    time.sleep(3)
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["status"] == "failed", body
    assert "the worker stopped (no heartbeat); start the import again" in body["log"]
    assert "Traceback" not in body["log"]
    assert not Item.objects.filter(project=pairwise_project).exists(), "a killed import left items behind"
    assert not Response.objects.filter(project=pairwise_project).exists()
    assert DataJob.objects.get(pk=job.pk).finished_at is not None

    report = services.items_import(project=pairwise_project, path=keep, import_format="loupe-jsonl")
    assert report.created == N_ITEMS
    assert Item.objects.filter(project=pairwise_project).count() == N_ITEMS


def test_a_worker_killed_mid_export_leaves_a_failed_job_no_archive_and_the_export_can_run_again(
    celery_worker_process, researcher, api_client_for, settings
):
    from annotation.models import DatasetSnapshot
    from annotation.services.exports import export_archive_path, export_options_check
    from tests.annotation.feedback import judge, people, project_with_items, refresh, responses_of

    project = project_with_items(
        "killed-export", "pairwise", {f"i{i}": [f"good {i}", f"bad {i}"] for i in range(20)}, created_by=researcher
    )
    (person,) = people("judge", 1)
    for i in range(20):
        good, bad = responses_of(project, f"i{i}")
        judge(good, bad, person, "a")
    refresh(project)
    snapshot = services.snapshot_create(project=project, created_by=None)
    # A snapshot of many rows (its 20 repeated), so that the export is still running when its worker dies.
    frozen = open(snapshot.path, "rb").read()  # noqa: SIM115
    with open(snapshot.path, "wb") as handle:
        for _ in range(EXPORT_ROWS // snapshot.n_rows):
            handle.write(frozen)
    n_rows = EXPORT_ROWS // snapshot.n_rows * snapshot.n_rows
    DatasetSnapshot.objects.filter(pk=snapshot.pk).update(n_rows=n_rows, n_train=n_rows, n_test=0)
    snapshot.refresh_from_db()
    api = api_client_for(researcher)
    exports_dir = Path(settings.EXPORTS_DIR)
    # Other tests of the session leave their archives in the same folder: only what this export adds counts.
    before = set(exports_dir.iterdir()) if exports_dir.is_dir() else set()
    started = api.post(f"/api/v1/snapshots/{snapshot.pk}/export-jobs/", {"format": "dense-jsonl"}, format="json")
    assert started.status_code == 202, started.content
    job_id = started.json()["id"]

    def mid_export():
        body = api.get(f"/api/v1/jobs/{job_id}/").json()
        assert body["status"] in ("queued", "running"), body
        return body if body["status"] == "running" and body["done"] > 0 else None

    body = _wait(mid_export, timeout=120, what="the export to report progress")
    assert body["done"] < n_rows, body
    os.killpg(celery_worker_process.pid, signal.SIGKILL)
    celery_worker_process.wait(timeout=10)

    settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS = 2
    time.sleep(3)
    body = api.get(f"/api/v1/jobs/{job_id}/").json()
    assert body["status"] == "failed" and body["download_url"] is None, body
    assert "the worker stopped (no heartbeat); start the export again" in body["log"]
    download = api.get(f"/api/v1/jobs/{job_id}/download/")
    assert download.status_code == 400 and "failed" in download.json()["message"]
    archive = export_archive_path(
        snapshot=snapshot,
        export_format="dense-jsonl",
        options=export_options_check(snapshot=snapshot, export_format="dense-jsonl", options={"split": "all"}),
    )
    assert not archive.exists(), "a killed export left a zip under the archive's name"
    # Only the hidden folder of the half-written export is left beside the archives, never served.
    added = set(archive.parent.iterdir()) - before
    assert added and all(path.name.startswith(".partial-") for path in added), sorted(p.name for p in added)

    again = api.post(f"/api/v1/snapshots/{snapshot.pk}/export-jobs/", {"format": "dense-jsonl"}, format="json").json()
    services.data_job_execute(job_id=again["id"])  # what a worker started afresh does with the task
    body = api.get(f"/api/v1/jobs/{again['id']}/").json()
    assert body["status"] == "succeeded", body["log"]
    assert api.get(body["download_url"]).status_code == 200 and archive.is_file()


EXPORT_ROWS = 200_000
