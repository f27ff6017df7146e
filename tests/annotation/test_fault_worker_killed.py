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

import pytest

from annotation import services
from annotation.models import DataJob, Item, Response

pytestmark = [pytest.mark.worker, pytest.mark.production_path]

N_ITEMS = 40_000


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
    _wait(
        lambda: api.get(f"/api/v1/jobs/{job.pk}/").json()["done"] > 0,
        timeout=120,
        what="the worker to report progress\n" + celery_worker_process.log_path.read_text()[-3000:],
    )
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["status"] == "running" and body["done"] < N_ITEMS, body
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
