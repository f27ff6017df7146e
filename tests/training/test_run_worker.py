"""Runs on real Celery worker processes: a killed worker's run ends failed with its log and resumes from its last
checkpoint to the planned step; a cancelled run stops within a step, keeps its checkpoint and resumes too."""

import os
import signal
from pathlib import Path

import pytest

from tests.helpers import wait_for
from training.models import ArtifactKind, JobStatus, ModelArtifact, RunMetric, TrainingRun

pytestmark = [pytest.mark.worker]


def _run(run_id: int) -> TrainingRun:
    return TrainingRun.objects.get(pk=run_id)


def _explain(run_id: int, *workers) -> str:
    return _run(run_id).log[-3000:] + "".join(w.log_path.read_text()[-2000:] for w in workers)


def test_a_killed_worker_fails_its_run_and_resume_finishes_it(
    start_worker, pairs_snapshot, admin_user, api_client_for, tiny_lm_dir
):
    """SIGKILL mid-run: the run is marked failed once its heartbeat is stale, its log kept; a new worker
    resumes it from the step-5 checkpoint (not from 0) and it reaches its 30th and last step."""
    client = api_client_for(admin_user)
    first = start_worker()
    started = client.post(
        "/api/v1/training-runs/",
        {
            "method": "dpo",
            "snapshot": pairs_snapshot.pk,
            "base_model": str(tiny_lm_dir),
            "config": {"max_steps": 30, "save_steps": 5, "save_total_limit": None},
        },
        format="json",
    )
    assert started.status_code == 201, started.content
    run_id = started.json()["id"]
    wait_for(lambda: _run(run_id).step >= 7, timeout=120, interval=0.1, message="the run to pass step 7")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = _run(run_id).step
    assert killed_at < 30, "the run finished before the worker was killed"

    def failed():
        body = client.get(f"/api/v1/training-runs/{run_id}/").json()
        return body if body["status"] == "failed" else None

    body = wait_for(failed, timeout=30, message="the dead worker's run to be marked failed")
    assert "the worker died" in body["log_tail"] and "step 6/30: loss=" in body["log_tail"]
    assert _run(run_id).step == killed_at  # nothing moved after the kill

    second = start_worker()
    assert client.post(f"/api/v1/training-runs/{run_id}/resume/").json()["status"] == "queued"
    run = wait_for(
        lambda: (r := _run(run_id)).status in (JobStatus.SUCCEEDED, JobStatus.FAILED) and r,
        timeout=120,
        message="the resumed run to finish",
    )
    assert run.status == JobStatus.SUCCEEDED, _explain(run_id, second)
    assert run.step == run.max_steps == 30
    resumed_from = int(run.log.split("resuming from ")[1].split("checkpoint-")[1].split()[0])
    assert 5 <= resumed_from <= killed_at and resumed_from % 5 == 0
    assert list(RunMetric.objects.filter(run_id=run_id).values_list("step", flat=True)) == list(range(1, 31))
    artifact = ModelArtifact.objects.get(produced_by_id=run_id)
    assert artifact.kind == ArtifactKind.POLICY and artifact.snapshot_id == pairs_snapshot.pk
    assert artifact.base_name == str(tiny_lm_dir)


def test_cancel_stops_within_a_step_and_resume_completes_the_run(
    start_worker, pairs_snapshot, admin_user, api_client_for, tiny_lm_dir
):
    """A reward-model run cancelled at step n stops by step n + 2 (the step under way and the one whose end
    sees the request), keeps that step's checkpoint and registers no model; resumed, it trains to its last step
    and registers a reward model."""
    client = api_client_for(admin_user)
    worker = start_worker()
    started = client.post(
        "/api/v1/training-runs/",
        {
            "method": "reward",
            "snapshot": pairs_snapshot.pk,
            "base_model": str(tiny_lm_dir),
            "config": {"max_steps": 60, "per_device_train_batch_size": 2, "save_steps": 1000},
        },
        format="json",
    )
    run_id = started.json()["id"]
    wait_for(lambda: _run(run_id).step >= 3, timeout=120, interval=0.1, message="the run to pass step 3")
    requested_at = client.post(f"/api/v1/training-runs/{run_id}/cancel/").json()["step"]
    run = wait_for(lambda: (r := _run(run_id)).status != JobStatus.RUNNING and r, timeout=60, message="the run to stop")
    assert run.status == JobStatus.CANCELLED, _explain(run_id, worker)
    assert requested_at <= run.step <= requested_at + 2 and run.step < 60
    checkpoint = f"checkpoint-{run.step}"
    assert (Path(run.output_dir) / "model" / "checkpoints" / checkpoint).is_dir()
    assert not ModelArtifact.objects.filter(produced_by_id=run_id).exists()

    assert client.post(f"/api/v1/training-runs/{run_id}/resume/").status_code == 200
    run = wait_for(
        lambda: (r := _run(run_id)).status in (JobStatus.SUCCEEDED, JobStatus.FAILED) and r,
        timeout=120,
        message="the resumed run to finish",
    )
    assert run.status == JobStatus.SUCCEEDED, _explain(run_id, worker)
    assert run.step == 60 and "resuming from" in run.log and checkpoint in run.log.split("resuming from")[1]
    artifact = ModelArtifact.objects.get(produced_by_id=run_id)
    assert artifact.kind == ArtifactKind.REWARD
