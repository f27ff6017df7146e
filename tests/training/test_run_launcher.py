"""A run launched through `LOUPE_TRAIN_LAUNCHER` trains across processes, reports from the main one and registers
its model like a run trained in the worker. Here the launcher is torchrun with two CPU processes (gloo); on GPU
machines it is `accelerate launch --multi_gpu --num_processes N` or torchrun alike (`accelerate launch --cpu`
starts one process only)."""

import sys

import pytest

from tests.conftest import _database_url_of_test_db
from training import services
from training.models import JobStatus, ModelArtifact, RunMetric

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_accelerate_launch_trains_a_run_on_two_processes(pairs_snapshot, tiny_lm_dir, settings, monkeypatch):
    """Two data-parallel processes train 3 DPO steps: the log says so, each step is recorded once, the run
    succeeds and its model is registered; the launcher's own output is kept beside the run."""
    monkeypatch.setenv("DATABASE_URL", _database_url_of_test_db())  # the launched processes use the test database
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")  # data parallel on CPU processes (gloo)
    settings.LOUPE_TRAIN_LAUNCHER = f"{sys.executable} -m torch.distributed.run --nproc_per_node 2"
    run = services.training_run_create(
        method="dpo", snapshot=pairs_snapshot, base_model=str(tiny_lm_dir), config={"max_steps": 3}, created_by=None
    )
    services.training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.log
    assert "launching: " in run.log and "on 2 processes" in run.log
    assert list(RunMetric.objects.filter(run=run).values_list("step", flat=True)) == [1, 2, 3]
    assert ModelArtifact.objects.get(produced_by=run).location.endswith("/model")
