"""Benchmark runs: started through the API, executed by a real Celery worker on the `benchmark` queue, examples
and summary stored; forbidden to non-staff; bad configs refused with the field named; failures and cancels recorded."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from annotation.models import JobStatus
from evaluation import services
from evaluation.models import BenchmarkExample, BenchmarkRun
from loupe.errors import ApplicationError
from tests.conftest import REPO, celery_workers
from tests.helpers import wait_for
from training.models import ModelArtifact

SHARED = REPO.parent / "shared" / "data"


@pytest.fixture
def benchmark_worker(transactional_db, tmp_path):
    """A real `celery worker` process listening on the `benchmark` queue only (so routing is part of the test)."""
    workers = celery_workers(tmp_path, queues="benchmark")
    yield next(workers)()
    next(workers, None)


def _finished(run_id: int) -> BenchmarkRun | None:
    run = BenchmarkRun.objects.get(pk=run_id)
    return run if run.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED) else None


@pytest.fixture
def chair_config(tmp_path):
    captions = tmp_path / "captions.json"
    captions.write_text(
        json.dumps(
            [
                {"image_id": 1, "caption": "A man riding a horse next to two dogs."},
                {"image_id": 2, "caption": "A cat on a table."},
            ]
        )
    )
    instances = tmp_path / "instances.json"
    instances.write_text(
        json.dumps(
            {
                "categories": [{"id": 1, "name": "person"}, {"id": 19, "name": "horse"}, {"id": 17, "name": "cat"}],
                "annotations": [
                    {"image_id": 1, "category_id": 1},
                    {"image_id": 1, "category_id": 19},
                    {"image_id": 2, "category_id": 17},
                ],
            }
        )
    )
    return {"captions": str(captions), "annotations": [str(instances)]}


@pytest.mark.worker
def test_pope_and_chair_runs_on_a_real_worker_store_summary_examples_and_failures(
    benchmark_worker, admin_user, api_client_for, tiny_vlm_dir, chair_config, tmp_path
):
    """POPE on shapes-world scenes with the tiny VLM (all "yes": the paper's 50/50/100/66.7/100), CHAIR on files,
    and a run whose model folder holds no model: failed, with the error and the traceback in its log."""
    client = api_client_for(admin_user)
    artifact = ModelArtifact.objects.create(name="tiny-vlm", location=str(tiny_vlm_dir))
    pope = client.post(
        "/api/v1/benchmark-runs/",
        {"benchmark": "pope", "model": artifact.pk, "config": {"shapes": {"n_images": 3, "seed": 2}, "batch_size": 4}},
        format="json",
    )
    assert pope.status_code == 201, pope.content
    chair = client.post("/api/v1/benchmark-runs/", {"benchmark": "chair", "config": chair_config}, format="json")
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    broken = client.post(
        "/api/v1/benchmark-runs/",
        {"benchmark": "pope", "model_path": str(empty), "config": {"shapes": {"n_images": 3, "seed": 2}}},
        format="json",
    )
    shr = client.post(
        "/api/v1/benchmark-runs/",
        {
            "benchmark": "shr",
            "model": artifact.pk,
            "config": {"shapes": {"n_images": 2, "seed": 3}, "max_new_tokens": 8},
        },
        format="json",
    )
    assert shr.status_code == 201, shr.content
    ids = [pope.json()["id"], chair.json()["id"], broken.json()["id"], shr.json()["id"]]
    runs = [wait_for(lambda i=i: _finished(i), timeout=180, message=f"run {i}") for i in ids]
    pope_run, chair_run, broken_run, shr_run = runs
    assert shr_run.status == JobStatus.SUCCEEDED, shr_run.log
    assert shr_run.summary["n_descriptions"] == 2 and shr_run.summary["judge_prompt_version"] == "shapes-ground-truth"
    assert shr_run.done == shr_run.total == 2 and shr_run.examples.count() == 2
    browser = Client()
    browser.force_login(admin_user)
    image = browser.get(f"/benchmarks/{shr_run.pk}/examples/0/image")  # the scene the model described
    assert image.status_code == 200 and b"".join(image.streaming_content).startswith(b"\x89PNG")
    assert pope_run.status == JobStatus.SUCCEEDED, pope_run.log + benchmark_worker.log_path.read_text()[-3000:]
    assert set(pope_run.summary) == {"random", "popular", "adversarial"}
    for metrics in pope_run.summary.values():
        assert metrics["n"] == 6 and metrics["tp"] == 3 and metrics["fp"] == 3
        assert (metrics["accuracy"], metrics["precision"], metrics["recall"], metrics["yes_ratio"]) == (0.5, 0.5, 1, 1)
        assert metrics["f1"] == pytest.approx(2 / 3)
    assert pope_run.done == pope_run.total == 18
    detail = client.get(f"/api/v1/benchmark-runs/{ids[0]}/").json()
    assert (
        detail["status"] == "succeeded" and detail["progress"] == 1.0 and "succeeded: 18 examples" in detail["log_tail"]
    )
    examples = client.get(f"/api/v1/benchmark-runs/{ids[0]}/examples/", {"limit": 500}).json()
    assert len(examples) == 18 and [e["index"] for e in examples] == list(range(18))
    assert examples[0]["key"] == "random/1" and examples[0]["answer"]
    wrong = client.get(f"/api/v1/benchmark-runs/{ids[0]}/examples/", {"hallucinated": "true", "limit": 500}).json()
    assert len(wrong) == 9 and {e["input"]["label"] for e in wrong} == {"no"}  # every "yes" to an absent object

    assert chair_run.status == JobStatus.SUCCEEDED, chair_run.log
    assert chair_run.summary["CHAIR_s"] == 1.0 and chair_run.summary["CHAIR_i"] == pytest.approx(2 / 5)
    assert list(chair_run.examples.values_list("hallucinated", flat=True)) == [True, True]

    assert broken_run.status == JobStatus.FAILED
    assert "config.json" in broken_run.error, broken_run.error  # from_pretrained found no model there
    assert "Traceback" in broken_run.log and not broken_run.examples.exists()
    assert client.get(f"/api/v1/benchmark-runs/{ids[2]}/").json()["error"] == broken_run.error


# ----------------------------------------------------------------------------------------- in-process


def test_execute_is_idempotent_and_a_cancelled_run_stores_nothing(db, chair_config):
    """A second delivery of the task leaves one set of examples; cancel: a queued run ends at once, a running one at
    its next batch, storing nothing."""
    run = services.benchmark_run_start(benchmark="chair", config=chair_config)
    services.benchmark_run_execute(run_id=run.pk)
    services.benchmark_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and BenchmarkExample.objects.filter(run=run).count() == 2
    with pytest.raises(ApplicationError, match="A succeeded run cannot be cancelled."):
        services.benchmark_run_cancel(run=run)

    queued = services.benchmark_run_start(benchmark="chair", config=chair_config)
    assert services.benchmark_run_cancel(run=queued).status == JobStatus.CANCELLED
    services.benchmark_run_execute(run_id=queued.pk)  # a late delivery does not revive it
    assert BenchmarkRun.objects.get(pk=queued.pk).status == JobStatus.CANCELLED

    running = services.benchmark_run_start(benchmark="chair", config=chair_config)
    BenchmarkRun.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING)
    assert services.benchmark_run_cancel(run=running).cancel_requested is True
    BenchmarkRun.objects.filter(pk=running.pk).update(status=JobStatus.QUEUED)  # as the worker finds it
    services.benchmark_run_execute(run_id=running.pk)
    running.refresh_from_db()
    assert running.status == JobStatus.CANCELLED and not running.examples.exists() and running.summary == {}


def test_a_run_whose_input_went_bad_fails_with_the_file_named(db, chair_config, tmp_path):
    """An input that breaks between start and execution fails the run with the file in its error; a folder that
    holds no model fails the run with that reason."""
    run = services.benchmark_run_start(benchmark="chair", config=chair_config)
    Path(chair_config["annotations"][0]).write_text("{broken")
    services.benchmark_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED
    assert run.error.startswith(f"--annotations file {chair_config['annotations'][0]}: not JSON")
    assert "InputError" in run.log
    one_scene = services.benchmark_run_start(
        benchmark="pope", model_path=str(tmp_path), config={"shapes": {"n_images": 1, "seed": 0}}
    )
    services.benchmark_run_execute(run_id=one_scene.pk)
    one_scene.refresh_from_db()
    # One scene is enough for POPE's "no"s (the whole shapes world's objects), so the run gets to the model,
    # and this folder holds none.
    assert one_scene.status == JobStatus.FAILED
    assert "config.json" in one_scene.error and "no object left" not in one_scene.error


# --------------------------------------------------------------------------------------------------- API


@pytest.fixture
def finished_run(db, chair_config):
    run = services.benchmark_run_start(benchmark="chair", config=chair_config)
    services.benchmark_run_execute(run_id=run.pk)
    return run


def test_non_staff_and_anonymous_users_see_and_start_no_runs(
    finished_run, researcher, annotator, api_client_for, chair_config
):
    """Researchers, annotators and anonymous users get 404 (or 401/403 unauthenticated) on every benchmark endpoint."""
    for user in (researcher, annotator):
        client = api_client_for(user)
        for url in (
            "/api/v1/benchmark-runs/",
            f"/api/v1/benchmark-runs/{finished_run.pk}/",
            f"/api/v1/benchmark-runs/{finished_run.pk}/examples/",
            "/api/v1/leaderboard/",
        ):
            assert client.get(url).status_code == 404, url
        assert client.post(f"/api/v1/benchmark-runs/{finished_run.pk}/cancel/").status_code == 404
        started = client.post("/api/v1/benchmark-runs/", {"benchmark": "chair", "config": chair_config}, format="json")
        assert started.status_code == 404
    anonymous = api_client_for(None)
    assert anonymous.get(f"/api/v1/benchmark-runs/{finished_run.pk}/examples/").status_code in (401, 403, 404)
    assert BenchmarkRun.objects.count() == 1


def test_staff_get_clear_400s_for_bad_configs(db, admin_user, api_client_for, chair_config, tmp_path):
    """Unknown benchmarks and settings, missing files and a POPE run without a model are refused, field named."""
    client = api_client_for(admin_user)

    def start(body: dict) -> dict:
        response = client.post("/api/v1/benchmark-runs/", body, format="json")
        assert response.status_code == 400, response.content
        return response.json()

    assert "benchmark" in start({"benchmark": "vqa", "config": {}})["extra"]["fields"]
    missing = {**chair_config, "captions": str(tmp_path / "none.json")}
    assert start({"benchmark": "chair", "config": missing}) == {
        "message": "config.captions must be the path of an existing file.",
        "extra": {"field": "config.captions"},
    }
    assert start({"benchmark": "chair", "config": {**chair_config, "colour": 1}})["extra"] == {"field": "config.colour"}
    assert start({"benchmark": "pope", "config": {"shapes": {}}})["message"].startswith("POPE needs a model")
    assert start({"benchmark": "pope", "model_path": str(tmp_path / "x"), "config": {}})["extra"] == {
        "field": "model_path"
    }
    bad_batch = {"benchmark": "pope", "model_path": str(tmp_path), "config": {"shapes": {}, "batch_size": 0}}
    assert start(bad_batch)["extra"] == {"field": "config.batch_size"}
    assert client.post("/api/v1/benchmark-runs/999/cancel/").status_code == 404
    assert BenchmarkRun.objects.count() == 0


def test_leaderboard_lists_models_with_lineage_and_headline_metrics(db, admin_user, api_client_for, chair_config):
    """A trained model's row (after its base's, whose runs are newer) names its base; the latest succeeded run per
    benchmark is shown."""
    base = ModelArtifact.objects.create(name="base-vlm", location="/models/base")
    trained = ModelArtifact.objects.create(name="run-7-dpo", location="/models/t", base=base, base_name="/models/base")
    for model, chair_i in ((trained, 0.9), (base, 0.4), (trained, 0.1)):  # trained's first run is superseded
        BenchmarkRun.objects.create(
            benchmark="chair",
            model=model,
            status=JobStatus.SUCCEEDED,
            summary={"CHAIR_s": 0.5, "CHAIR_i": chair_i},
        )
    BenchmarkRun.objects.create(benchmark="chair", model=trained, status=JobStatus.FAILED, summary={})
    BenchmarkRun.objects.create(
        benchmark="pope",
        model=trained,
        status=JobStatus.SUCCEEDED,
        summary={s: {"accuracy": a, "f1": a, "yes_ratio": 0.5} for s, a in (("random", 0.9), ("adversarial", 0.7))},
    )
    body = api_client_for(admin_user).get("/api/v1/leaderboard/").json()
    assert body["benchmarks"] == [
        {"name": "chair", "headline": "CHAIR_i", "lower_is_better": True},
        {"name": "pope", "headline": "f1", "lower_is_better": False},
    ]
    first, second = body["rows"]
    assert first["model"] == "base-vlm" and first["lineage"]["base"] == ""
    assert second["model"] == "run-7-dpo" and second["lineage"]["base"] == "base-vlm"
    assert second["results"]["chair"]["metrics"]["CHAIR_i"] == 0.1
    assert second["results"]["pope"]["metrics"]["f1"] == pytest.approx(0.8)
    assert second["results"]["pope"]["metrics"]["f1_adversarial"] == 0.7


def test_the_web_side_of_evaluation_imports_no_torch():
    """Services, runners' validation, the API and the admin load without torch (the worker alone loads models)."""
    code = (
        "import os, sys, django\nos.environ['DJANGO_SETTINGS_MODULE'] = 'loupe.settings.test'\ndjango.setup()\n"
        "import evaluation.services, evaluation.api, evaluation.admin, evaluation.selectors, evaluation.tasks\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_a_run_whose_worker_died_is_marked_failed_when_runs_are_read(db, admin_user, api_client_for, chair_config):
    """A running row with a heartbeat older than the timeout is failed with a reason; a fresh one is left alone."""
    import datetime as dt

    from django.utils import timezone

    stale = services.benchmark_run_start(benchmark="chair", config=chair_config)
    fresh = services.benchmark_run_start(benchmark="chair", config=chair_config)
    BenchmarkRun.objects.filter(pk=stale.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now() - dt.timedelta(minutes=10)
    )
    BenchmarkRun.objects.filter(pk=fresh.pk).update(status=JobStatus.RUNNING, heartbeat_at=timezone.now())
    body = {r["id"]: r for r in api_client_for(admin_user).get("/api/v1/benchmark-runs/").json()}
    assert body[stale.pk]["status"] == "failed" and body[stale.pk]["error"].startswith("The worker stopped")
    assert body[fresh.pk]["status"] == "running"
