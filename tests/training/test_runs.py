"""Training runs on the platform without a worker: refused configs queue nothing, the run form, ETA, dead-worker
reaping, metrics merging, cancel/resume rules, methods and models APIs, and merging an adapter artifact."""

import datetime as dt

import pytest
from django.utils import timezone

from annotation.models import DatasetSnapshot
from training import services
from training.models import ArtifactKind, JobStatus, ModelArtifact, RunMetric, TrainingRun

pytestmark = pytest.mark.django_db


def post_run(client, **body):
    return client.post("/api/v1/training-runs/", body, format="json")


@pytest.mark.parametrize(
    ("method", "config", "message"),
    [
        ("dpo", {"beta": 0}, "beta must be positive"),
        ("dpo", {"betta": 0.1}, "Unknown config field(s) for dpo: betta"),
        ("ppo", {}, "exactly one of reward_model"),
        ("ppo", {"reward_model": "/no/such/reward-model"}, "does not exist"),
        ("grpo", {"reward_function": "tests.training.scorers:word_count", "num_generations": 3}, "multiple of"),
        ("sft", {"control_tokens": True, "good_token": "[X]", "bad_token": "[X]"}, "must differ"),
        ("rlhf", {}, "Unknown training method 'rlhf'"),
    ],
)
def test_a_bad_config_is_refused_with_its_reason_and_nothing_is_queued(
    method, config, message, admin_user, api_client_for, pairs_snapshot, django_capture_on_commit_callbacks
):
    """The API answers 400 with a message naming the problem; no run row exists and no task was sent."""
    with django_capture_on_commit_callbacks() as queued:
        response = post_run(
            api_client_for(admin_user),
            method=method,
            snapshot=pairs_snapshot.pk,
            base_model="/models/tiny",
            config=config,
        )
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert TrainingRun.objects.count() == 0 and queued == []


def test_a_good_config_is_stored_with_its_defaults_and_queued_once(
    admin_user, api_client_for, pairs_snapshot, django_capture_on_commit_callbacks, model_folder
):
    """A valid run is saved with every setting filled in, its planned steps known, and one task queued."""
    with django_capture_on_commit_callbacks() as queued:
        response = post_run(
            api_client_for(admin_user),
            method="reward",
            snapshot=pairs_snapshot.pk,
            base_model=model_folder,
            config={"max_steps": 7},
        )
    assert response.status_code == 201, response.content
    run = TrainingRun.objects.get(pk=response.json()["id"])
    assert run.status == JobStatus.QUEUED and run.max_steps == 7
    assert run.config["max_steps"] == 7 and run.config["learning_rate"] == 1e-3
    assert len(queued) == 1


def test_snapshot_kind_and_base_artifact_are_checked(admin_user, api_client_for, pairs_snapshot, model_folder):
    """DPO refuses a ratings snapshot; an adapter cannot be a base; a reward model cannot be a policy's base;
    a registered policy's location becomes the run's base model."""
    client = api_client_for(admin_user)
    ratings = DatasetSnapshot.objects.create(
        project=pairs_snapshot.project, content_hash="r" * 64, filters={"kind": "ratings"}, n_rows=3, n_train=3,
        n_test=0, path="/nowhere.jsonl",
    )  # fmt: skip
    refused = post_run(client, method="dpo", snapshot=ratings.pk, base_model=model_folder)
    assert refused.status_code == 400 and "reads pairs snapshots" in refused.json()["message"]

    adapter = ModelArtifact.objects.create(name="lora", location="/models/lora", is_adapter=True)
    refused = post_run(client, method="dpo", snapshot=pairs_snapshot.pk, base_artifact=adapter.pk)
    assert refused.status_code == 400 and "merge it" in refused.json()["message"]
    reward = ModelArtifact.objects.create(name="rm", location="/models/rm", kind=ArtifactKind.REWARD)
    refused = post_run(client, method="dpo", snapshot=pairs_snapshot.pk, base_artifact=reward.pk)
    assert refused.status_code == 400 and "reward_model" in refused.json()["message"]

    policy = ModelArtifact.objects.create(name="policy", location="/models/policy")
    started = post_run(client, method="dpo", snapshot=pairs_snapshot.pk, base_artifact=policy.pk)
    assert started.status_code == 201
    assert started.json()["base_model"] == "/models/policy" and started.json()["base_artifact"] == policy.pk


def test_training_is_for_staff_only(researcher, api_client_for, pairs_snapshot, client):
    """A researcher gets 404 from the run API, the methods API, the models API and the run pages."""
    api = api_client_for(researcher)
    assert post_run(api, method="dpo", snapshot=pairs_snapshot.pk, base_model="x").status_code == 404
    assert api.get("/api/v1/training-methods/").status_code == 404
    assert api.get("/api/v1/models/").status_code == 404
    client.force_login(researcher)
    assert client.get("/runs/").status_code == 404 and client.get("/models/").status_code == 404


def test_the_run_form_starts_a_run_or_shows_why_not(admin_user, client, pairs_snapshot, model_folder):
    """The runs page offers every method and the snapshot; bad JSON and a bad setting come back with the
    reason and the typed values; a good form lands on the new run's page."""
    client.force_login(admin_user)
    page = client.get("/runs/").content.decode()
    for method in services.METHOD_CONFIGS:
        assert f'<option value="{method}"' in page
    assert f'<option value="{pairs_snapshot.pk}"' in page

    form = {"method": "dpo", "snapshot": pairs_snapshot.pk, "base_model": model_folder, "config": '{"beta": '}
    bad_json = client.post("/runs/", form)
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.content.decode()
    bad_value = client.post("/runs/", {**form, "config": '{"beta": -1}'})
    assert bad_value.status_code == 400
    assert "beta must be positive" in bad_value.content.decode() and model_folder in bad_value.content.decode()
    assert TrainingRun.objects.count() == 0

    started = client.post("/runs/", {**form, "config": '{"max_steps": 3}'})
    run = TrainingRun.objects.get()
    assert started.status_code == 302 and started.url == f"/runs/{run.pk}/"
    run_page = client.get(started.url).content.decode()
    assert 'id="chart-loss"' in run_page and 'id="run-cancel"' in run_page and "plotly.min.js" in run_page


def test_methods_api_lists_every_setting_with_help(admin_user, api_client_for):
    """Every method is listed with each setting's default and help text."""
    methods = api_client_for(admin_user).get("/api/v1/training-methods/").json()
    assert {m["method"] for m in methods} == set(services.METHOD_CONFIGS)
    for method in methods:
        assert method["description"]
        assert all(setting["help"] for setting in method["settings"]), method["method"]
    ppo = next(m for m in methods if m["method"] == "ppo")
    assert ppo["defaults"]["target_kl"] == 6.0 and "lora_r" in ppo["defaults"]


def make_running_run(snapshot, *, step: int, max_steps: int, heartbeat_age: float = 0.0) -> TrainingRun:
    now = timezone.now()
    return TrainingRun.objects.create(
        method="dpo", base_model="/models/tiny", snapshot=snapshot, status=JobStatus.RUNNING, step=step,
        max_steps=max_steps, started_at=now - dt.timedelta(seconds=60),
        heartbeat_at=now - dt.timedelta(seconds=heartbeat_age), log="step 1\n",
    )  # fmt: skip


def test_eta_comes_from_the_pace_of_recent_steps(admin_user, api_client_for, pairs_snapshot):
    """Steps 2 to 5 logged two seconds apart and 15 steps to go: about 30 seconds left."""
    run = make_running_run(pairs_snapshot, step=5, max_steps=20)
    base = timezone.now() - dt.timedelta(seconds=10)
    for step in range(2, 6):
        metric = RunMetric.objects.create(run=run, step=step, values={"loss": 0.5})
        RunMetric.objects.filter(pk=metric.pk).update(logged_at=base + dt.timedelta(seconds=2 * step))
    detail = api_client_for(admin_user).get(f"/api/v1/training-runs/{run.pk}/").json()
    assert detail["eta_seconds"] == pytest.approx(30.0)
    assert [m["step"] for m in detail["metrics"]] == [2, 3, 4, 5]


def test_a_run_whose_heartbeat_stopped_is_failed_when_read(admin_user, api_client_for, pairs_snapshot, settings):
    """A running run without a heartbeat for longer than the timeout is marked failed, keeping its log and
    saying the worker died; a run with a fresh heartbeat stays running."""
    settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS = 30
    dead = make_running_run(pairs_snapshot, step=4, max_steps=10, heartbeat_age=60)
    alive = make_running_run(pairs_snapshot, step=4, max_steps=10, heartbeat_age=1)
    detail = api_client_for(admin_user).get(f"/api/v1/training-runs/{dead.pk}/").json()
    assert detail["status"] == "failed" and detail["finished_at"] is not None
    assert detail["log_tail"].startswith("step 1\n") and "the worker died at step 4" in detail["log_tail"]
    alive.refresh_from_db()
    assert alive.status == JobStatus.RUNNING


def test_training_and_evaluation_metrics_of_a_step_share_its_row(pairs_snapshot):
    """The evaluation logged at a step adds to that step's training metrics instead of replacing them."""
    run = make_running_run(pairs_snapshot, step=0, max_steps=4)
    hooks = services.DatabaseHooks(run.pk)
    hooks.on_step(2, 4, {"loss": 0.6})
    hooks.on_step(2, 4, {"eval_loss": 0.7})
    assert RunMetric.objects.get(run=run, step=2).values == {"loss": 0.6, "eval_loss": 0.7}
    run.refresh_from_db()
    assert run.step == 2 and run.max_steps == 4


def test_cancel_and_resume_follow_the_run_status(admin_user, api_client_for, pairs_snapshot):
    """A queued run cancels at once and can be resumed; a running run is asked to stop; a finished one can be
    neither cancelled nor resumed."""
    client = api_client_for(admin_user)
    queued = TrainingRun.objects.create(method="dpo", base_model="m", snapshot=pairs_snapshot)
    assert client.post(f"/api/v1/training-runs/{queued.pk}/cancel/").json()["status"] == "cancelled"
    assert client.post(f"/api/v1/training-runs/{queued.pk}/resume/").json()["status"] == "queued"
    running = make_running_run(pairs_snapshot, step=1, max_steps=5)
    stopping = client.post(f"/api/v1/training-runs/{running.pk}/cancel/").json()
    assert stopping["status"] == "running" and stopping["cancel_requested"] is True
    done = TrainingRun.objects.create(method="dpo", base_model="m", snapshot=pairs_snapshot, status=JobStatus.SUCCEEDED)
    assert client.post(f"/api/v1/training-runs/{done.pk}/cancel/").status_code == 400
    resumed = client.post(f"/api/v1/training-runs/{done.pk}/resume/")
    assert resumed.status_code == 400 and "Only failed or cancelled" in resumed.json()["message"]


def test_models_are_listed_with_lineage_and_registered_through_the_api(
    admin_user, api_client_for, client, pairs_snapshot
):
    """A registered hub model and a run's output show base, snapshot and run; names are unique."""
    api = api_client_for(admin_user)
    created = api.post("/api/v1/models/", {"name": "hub-lm", "location": "org/lm"}, format="json")
    assert created.status_code == 201 and created.json()["kind"] == "policy"
    assert api.post("/api/v1/models/", {"name": "hub-lm", "location": "x"}, format="json").status_code == 400
    run = TrainingRun.objects.create(method="dpo", base_model="org/lm", snapshot=pairs_snapshot)
    ModelArtifact.objects.create(
        name="run-1-dpo", location="/runs/1/model", base_id=created.json()["id"], base_name="org/lm",
        snapshot=pairs_snapshot, produced_by=run,
    )  # fmt: skip
    listed = {m["name"]: m for m in api.get("/api/v1/models/").json()}
    assert listed["run-1-dpo"]["base"] == created.json()["id"] and listed["run-1-dpo"]["snapshot"] == pairs_snapshot.pk
    assert listed["run-1-dpo"]["produced_by"] == run.pk
    client.force_login(admin_user)
    page = client.get("/models/").content.decode()
    assert "run-1-dpo" in page and "hub-lm" in page and f"/runs/{run.pk}/" in page


def test_an_adapter_artifact_merges_into_a_registered_full_model(
    admin_user, api_client_for, pairs_snapshot, tiny_lm_dir, tmp_path, settings, django_capture_on_commit_callbacks
):
    """The merge API queues the merge of an adapter (and refuses a full model); the merge registers
    `<name>-merged` as a full model with the adapter's lineage, loadable like any model."""
    from transformers import AutoModelForCausalLM

    from training.methods.sft import SFTConfig, train_sft

    settings.MODELS_DIR = str(tmp_path / "models")
    data = tmp_path / "rows.jsonl"
    data.write_text('{"prompt": "Describe.", "chosen": "A red circle.", "rejected": "A blue star."}\n')
    adapter_dir = train_sft(
        config=SFTConfig(max_steps=1, use_lora=True, merge_lora=False),
        train_path=data,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "adapter",
    ).output_dir
    adapter = ModelArtifact.objects.create(
        name="run-9-sft",
        location=str(adapter_dir),
        is_adapter=True,
        base_name=str(tiny_lm_dir),
        snapshot=pairs_snapshot,
    )
    full = ModelArtifact.objects.create(name="full", location=str(tiny_lm_dir))
    api = api_client_for(admin_user)
    assert api.post(f"/api/v1/models/{full.pk}/merge/").status_code == 400
    with django_capture_on_commit_callbacks() as queued:
        response = api.post(f"/api/v1/models/{adapter.pk}/merge/")
    assert response.status_code == 202 and response.json()["merged_name"] == "run-9-sft-merged" and len(queued) == 1

    merged = services.model_artifact_merge_execute(artifact_id=adapter.pk)
    assert merged.name == "run-9-sft-merged" and not merged.is_adapter
    assert merged.base_name == str(tiny_lm_dir) and merged.snapshot == pairs_snapshot
    AutoModelForCausalLM.from_pretrained(merged.location)
    assert api.post(f"/api/v1/models/{adapter.pk}/merge/").status_code == 400  # merged already


def test_manage_train_refuses_a_bad_config_and_queues_a_good_one(pairs_snapshot, django_capture_on_commit_callbacks):
    """`manage.py train` stops with the config's problem before queueing; a registered model can be the base."""
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="lora_dropout must be in"):
        call_command("train", method="sft", snapshot=pairs_snapshot.pk, base_model="/m", config='{"lora_dropout": 2}')
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("train", method="sft", snapshot=pairs_snapshot.pk, base_model="/m", config="{max_steps: 2}")
    assert TrainingRun.objects.count() == 0
    ModelArtifact.objects.create(name="policy-v1", location="/models/policy-v1")
    with django_capture_on_commit_callbacks() as queued:
        call_command("train", method="sft", snapshot=pairs_snapshot.pk, base_artifact="policy-v1", config="{}")
    run = TrainingRun.objects.get()
    assert run.base_model == "/models/policy-v1" and run.base_artifact.name == "policy-v1" and len(queued) == 1
