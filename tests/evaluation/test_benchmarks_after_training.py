"""A training run's config may ask for benchmarks: checked when the run is created (torch-free, the field named),
queued on the new model artifact when the run succeeds, and not queued when it is cancelled."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from annotation.models import JobStatus
from evaluation.models import BenchmarkRun
from tests.training.conftest import build_pairs_snapshot
from training import services as training_services
from training.models import ModelArtifact, TrainingRun

pytestmark = pytest.mark.django_db

POPE_AFTER = [{"benchmark": "pope", "config": {"shapes": {"n_images": 4, "seed": 1}, "batch_size": 4}}]


@pytest.fixture
def snapshot(tmp_path):
    return build_pairs_snapshot(slug="after-training", image_dir=tmp_path / "images")


def post_run(client, snapshot, benchmarks, base_model="/models/tiny"):
    return client.post(
        "/api/v1/training-runs/",
        {"method": "dpo", "snapshot": snapshot.pk, "base_model": base_model,
         "config": {"max_steps": 2, "benchmarks": benchmarks}},
        format="json",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("benchmarks", "message"),
    [
        ({"benchmark": "pope"}, "config.benchmarks must be a list"),
        ([{"name": "pope"}], 'config.benchmarks[0] must be {"benchmark": NAME'),
        ([{"benchmark": "vqa", "config": {}}], "config.benchmarks[0]: Unknown benchmark 'vqa'"),
        ([*POPE_AFTER, {"benchmark": "pope", "config": {"shapes": {}, "batch_size": 0}}],
         "config.benchmarks[1]: config.batch_size must be a whole number"),
        ([{"benchmark": "chair", "config": {"captions": "/no/file", "annotations": []}}], "config.benchmarks[0]: "),
        ([{"benchmark": "mmhal", "config": {"questions": __file__}}], "config.benchmarks[0]: config.images"),
        ([{"benchmark": "mmhal", "config": {"questions": __file__, "images": str(Path(__file__).parent)}}],
         "config.benchmarks[0]: config.judge"),
        ([{"benchmark": "human_eval", "config": {"project": "nope"}}], "config.benchmarks[0]: config.project"),
        ([{"benchmark": "chair", "config": {"captions": __file__, "annotations": [__file__]}}],
         "config.benchmarks[0]: chair with this config does not ask the trained model anything"),
    ],
)  # fmt: skip
def test_bad_benchmarks_in_a_training_config_are_refused_at_create_time(
    benchmarks, message, admin_user, api_client_for, snapshot, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        response = post_run(api_client_for(admin_user), snapshot, benchmarks)
    assert response.status_code == 400, response.content
    assert message in response.json()["message"]
    assert TrainingRun.objects.count() == 0 and queued == []


def test_a_succeeded_run_queues_its_benchmarks_on_the_model_it_produced(
    admin_user, api_client_for, snapshot, tiny_vlm_dir, django_capture_on_commit_callbacks
):
    """The config keeps the benchmarks next to the method's settings (which still build); on success each is a
    queued run of the new artifact (lineage: produced by the training run), logged in the training run."""
    response = post_run(api_client_for(admin_user), snapshot, POPE_AFTER, base_model=str(tiny_vlm_dir))
    assert response.status_code == 201, response.content
    run = TrainingRun.objects.get(pk=response.json()["id"])
    assert run.config["benchmarks"] == POPE_AFTER and run.config["beta"] == 0.1
    assert training_services.method_config_build(method="dpo", config=run.config).max_steps == 2
    run.status = JobStatus.RUNNING
    run.save()
    result = SimpleNamespace(stopped_early=False, steps=2, output_dir=tiny_vlm_dir)
    with django_capture_on_commit_callbacks() as queued:
        training_services._finish(run=run, result=result)
    artifact = ModelArtifact.objects.get(produced_by=run)
    bench = BenchmarkRun.objects.get()
    assert bench.benchmark == "pope" and bench.model == artifact and bench.status == JobStatus.QUEUED
    assert bench.config["shapes"]["n_images"] == 4 and bench.created_by == admin_user
    assert len(queued) == 1  # the benchmark task, sent once the training run's result is committed
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED
    assert f"benchmark pope queued as benchmark run {bench.pk}" in run.log


def test_a_benchmark_whose_input_is_gone_is_logged_and_a_cancelled_run_queues_nothing(
    admin_user, api_client_for, snapshot, tiny_vlm_dir, tmp_path
):
    captions = tmp_path / "questions.json"
    captions.write_text("[]")
    asks = [{"benchmark": "mmhal", "config": {"questions": str(captions), "images": str(tmp_path),
                                              "judge": {"model": str(tiny_vlm_dir)}}}]  # fmt: skip
    response = post_run(api_client_for(admin_user), snapshot, asks, base_model=str(tiny_vlm_dir))
    assert response.status_code == 201, response.content
    run = TrainingRun.objects.get(pk=response.json()["id"])
    captions.unlink()
    training_services._finish(run=run, result=SimpleNamespace(stopped_early=False, steps=2, output_dir=tiny_vlm_dir))
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and not BenchmarkRun.objects.exists()
    assert "benchmark mmhal not queued: config.questions must be the path of an existing file." in run.log

    second_run = post_run(api_client_for(admin_user), snapshot, POPE_AFTER, base_model=str(tiny_vlm_dir))
    second = TrainingRun.objects.get(pk=second_run.json()["id"])
    training_services._finish(run=second, result=SimpleNamespace(stopped_early=True, steps=1, output_dir=tiny_vlm_dir))
    assert not BenchmarkRun.objects.exists()
