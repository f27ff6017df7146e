"""Issue 18, item 3: runs are checked before they are queued (base model, snapshot kind, config); a failed run
shows its cause in one line; Resume is offered only with a checkpoint to continue from. Item 4: the demo's tiny
models are registered, so the run form lists them and its placeholder names a folder that exists."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation.models import DatasetSnapshot
from training import services
from training.models import ArtifactKind, JobStatus, ModelArtifact, TrainingRun

pytestmark = pytest.mark.django_db


def post_run(client, **body):
    return client.post("/api/v1/training-runs/", body, format="json")


@pytest.fixture
def api(admin_user, api_client_for):
    return api_client_for(admin_user)


@pytest.mark.parametrize(
    ("base_model", "message"),
    [
        ("{tmp}/no-such-model", "No model folder {tmp}/no-such-model and no registered model of that name"),
        ("Qwen/Qwen2-VL-2B-Instruct", "hub names are refused because training runs offline"),
        ("{tmp}", "has no config.json: it is not a model folder"),
        ("{tmp}/adapter", "is a LoRA adapter, not a full model"),
        ("   ", "Give a base_model (a model folder or a registered model's name) or a base_artifact id"),
    ],
)
def test_a_base_model_that_cannot_load_is_refused_before_anything_is_queued(
    base_model, message, api, pairs_snapshot, tmp_path, django_capture_on_commit_callbacks
):
    """A missing folder, a hub name nobody registered, a folder without config.json and an adapter are 400s
    naming `base_model`; no run row exists and no task was sent."""
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with django_capture_on_commit_callbacks() as queued:
        response = post_run(api, method="dpo", snapshot=pairs_snapshot.pk, base_model=base_model.format(tmp=tmp_path))
    assert response.status_code == 400, response.content
    assert message.format(tmp=tmp_path) in response.json()["message"]
    assert response.json()["extra"]["field"] == "base_model"
    assert TrainingRun.objects.count() == 0 and queued == []


def test_a_model_folder_or_a_registered_name_is_accepted(api, pairs_snapshot, model_folder, monkeypatch):
    """A folder with config.json is stored as an absolute path (the worker may run elsewhere); a registered
    model's name, even of a hub model, runs on its location with it as the lineage."""
    monkeypatch.chdir(Path(model_folder).parent)
    started = post_run(api, method="dpo", snapshot=pairs_snapshot.pk, base_model=Path(model_folder).name)
    assert started.status_code == 201, started.content
    assert started.json()["base_model"] == model_folder and started.json()["base_artifact"] is None

    hub = ModelArtifact.objects.create(name="qwen-vl", location="Qwen/Qwen2-VL-2B-Instruct")
    started = post_run(api, method="dpo", snapshot=pairs_snapshot.pk, base_model="qwen-vl")
    assert started.status_code == 201, started.content
    assert (started.json()["base_model"], started.json()["base_artifact"]) == ("Qwen/Qwen2-VL-2B-Instruct", hub.pk)


@pytest.mark.parametrize(
    ("method", "kind", "message"),
    [
        ("dpo", "sft", "dpo reads pairs snapshots; snapshot #{pk} holds sft rows"),
        ("ddpo", "sft", "ddpo reads pairs snapshots"),
        ("reward", "ratings", "reward reads pairs snapshots"),
        ("sft", "ratings", "sft reads pairs or sft snapshots"),
        ("grpo", "ratings", "grpo reads pairs or sft snapshots"),
    ],
)
def test_a_snapshot_of_the_wrong_kind_is_refused(method, kind, message, api, pairs_snapshot, model_folder):
    """Each method names the snapshot kinds it reads (pairs for dpo/ddpo/reward; pairs or sft for the others)."""
    snapshot = DatasetSnapshot.objects.create(
        project=pairs_snapshot.project, content_hash=kind[0] * 64, filters={"kind": kind}, n_rows=3, n_train=3,
        n_test=0, path="/nowhere.jsonl",
    )  # fmt: skip
    config = {"reward_function": "tests.training.scorers:word_count"} if method == "grpo" else {}
    response = post_run(api, method=method, snapshot=snapshot.pk, base_model=model_folder, config=config)
    assert response.status_code == 400, response.content
    assert message.format(pk=snapshot.pk) in response.json()["message"]
    assert response.json()["extra"]["field"] == "snapshot"


def test_the_run_form_refuses_a_missing_base_model_with_the_reason(admin_user, client, pairs_snapshot, tmp_path):
    """The runs page shows the same reason and keeps what was typed."""
    client.force_login(admin_user)
    missing = str(tmp_path / "nope")
    form = {"method": "dpo", "snapshot": pairs_snapshot.pk, "base_model": missing, "config": "{}"}
    page = client.post("/runs/", form)
    assert page.status_code == 400
    assert f"No model folder {missing}" in page.content.decode() and f'value="{missing}"' in page.content.decode()
    assert TrainingRun.objects.count() == 0


# ------------------------------------------------------------------------------------------- a failed run


def _failed_run(
    snapshot, tmp_path, *, log: str, checkpoints: tuple[str, ...] = (), half_written: tuple[str, ...] = ()
) -> TrainingRun:
    run = TrainingRun.objects.create(
        method="dpo", base_model="/m", snapshot=snapshot, status=JobStatus.FAILED, log=log,
        output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    for name in (*checkpoints, *half_written):
        folder = tmp_path / "run" / "model" / "checkpoints" / name
        folder.mkdir(parents=True)
        if name in checkpoints:
            (folder / "trainer_state.json").write_text("{}")  # the Trainer's last write: the checkpoint is whole
    return run


TRACEBACK = (
    '[loupe] starting dpo on /m\nTraceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
    "OSError: /m does not appear to have a file named config.json\n"
    "[loupe] failed: OSError: /m does not appear to have a file named config.json\n"
)


def test_a_failed_run_shows_its_cause_in_one_line(api, admin_user, client, pairs_snapshot, tmp_path):
    """The detail API and the run page give the cause line, not the traceback; the log keeps the traceback."""
    run = _failed_run(pairs_snapshot, tmp_path, log=TRACEBACK)
    detail = api.get(f"/api/v1/training-runs/{run.pk}/").json()
    assert detail["failure_cause"] == "OSError: /m does not appear to have a file named config.json"
    assert "Traceback" in detail["log_tail"]
    client.force_login(admin_user)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    cause_at = page.index('id="run-cause"')
    assert cause_at < page.index('id="run-log"')
    assert "OSError: /m does not appear" in page[cause_at : page.index("</p>", cause_at)]
    assert "Traceback" not in page[cause_at : page.index("</p>", cause_at)]


def test_a_running_run_without_a_start_time_is_shown_without_an_eta(api, pairs_snapshot, tmp_path):
    """A row set running by hand (the admin) has no start time: the detail API answers, with no ETA (was a 500)."""
    run = TrainingRun.objects.create(
        method="dpo", base_model="/m", snapshot=pairs_snapshot, status=JobStatus.RUNNING, max_steps=10, step=2,
        output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    response = api.get(f"/api/v1/training-runs/{run.pk}/")
    assert response.status_code == 200, response.content
    assert response.json()["eta_seconds"] is None


def test_a_run_that_failed_before_the_cause_line_existed_shows_its_last_line(api, pairs_snapshot, tmp_path):
    """Older failed runs (no `[loupe] failed:` line) show the traceback's last line; other runs no cause."""
    run = _failed_run(pairs_snapshot, tmp_path, log="Traceback (most recent call last):\nValueError: bad\n\n")
    assert api.get(f"/api/v1/training-runs/{run.pk}/").json()["failure_cause"] == "ValueError: bad"
    TrainingRun.objects.filter(pk=run.pk).update(status=JobStatus.CANCELLED)
    assert api.get(f"/api/v1/training-runs/{run.pk}/").json()["failure_cause"] is None


def test_the_worker_records_the_cause_line_after_the_traceback(pairs_snapshot, tmp_path, settings):
    """A run whose base model does not load (config.json without a model type) fails in the worker's service
    with the traceback in its log, then one `[loupe] failed:` line naming the exception."""
    settings.RUNS_DIR = tmp_path / "runs"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    run = services.training_run_create(
        method="dpo", snapshot=pairs_snapshot, base_model=str(broken), config={"max_steps": 1}, created_by=None
    )
    with pytest.raises(ValueError):
        services.training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "Traceback" in run.log
    last = run.log.strip().splitlines()[-1]
    assert last.startswith("[loupe] failed: ValueError: ") and len(last) <= 320


def test_resume_is_offered_only_with_a_checkpoint(api, admin_user, client, pairs_snapshot, tmp_path):
    """Without a checkpoint the page hides "Resume from the last checkpoint" and offers "Start again"; the
    detail API names no checkpoint and the resumed run's log says it starts from the beginning. With
    checkpoints, Resume names the latest whole one (checkpoint-10 after checkpoint-8; not checkpoint-12, which a
    kill left without its state file)."""
    client.force_login(admin_user)
    bare = _failed_run(pairs_snapshot, tmp_path / "a", log=TRACEBACK)
    assert api.get(f"/api/v1/training-runs/{bare.pk}/").json()["last_checkpoint"] is None
    page = client.get(f"/runs/{bare.pk}/").content.decode()
    assert 'id="run-resume" data-action="resume" hidden' in page
    assert 'id="run-restart" data-action="resume" class="secondary">' in page
    assert "No checkpoint was saved" in page
    assert api.post(f"/api/v1/training-runs/{bare.pk}/resume/").status_code == 200
    bare.refresh_from_db()
    assert bare.log.endswith("[loupe] resume requested: from the beginning (no checkpoint was saved)\n")

    saved = _failed_run(
        pairs_snapshot,
        tmp_path / "b",
        log=TRACEBACK,
        checkpoints=("checkpoint-8", "checkpoint-10"),
        half_written=("checkpoint-12",),
    )
    assert api.get(f"/api/v1/training-runs/{saved.pk}/").json()["last_checkpoint"] == "checkpoint-10"
    page = client.get(f"/runs/{saved.pk}/").content.decode()
    assert 'id="run-resume" data-action="resume">Resume from the last checkpoint' in page
    assert '<span class="run-checkpoint">checkpoint-10</span>' in page
    assert 'id="run-restart" data-action="resume" class="secondary" hidden' in page
    api.post(f"/api/v1/training-runs/{saved.pk}/resume/")
    saved.refresh_from_db()
    assert saved.log.endswith("[loupe] resume requested: from checkpoint-10\n")


def test_a_dead_worker_without_a_checkpoint_does_not_promise_one(pairs_snapshot, tmp_path, settings):
    """The reaper's note says there is no checkpoint (not "resume continues from the last checkpoint") and
    leaves a cause line."""
    import datetime as dt

    from django.utils import timezone

    run = TrainingRun.objects.create(
        method="dpo", base_model="/m", snapshot=pairs_snapshot, status=JobStatus.RUNNING, step=3,
        heartbeat_at=timezone.now() - dt.timedelta(hours=1), output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    assert services.training_runs_reap_dead() == 1
    run.refresh_from_db()
    assert "No checkpoint: resume starts again." in run.log and "last checkpoint" not in run.log
    assert run.log.strip().splitlines()[-1] == "[loupe] failed: the worker stopped at step 3 (no heartbeat)."


# ------------------------------------------------------------------------------------------- item 4: demo


def test_the_demo_registers_its_tiny_models_for_the_run_form(admin_user, client, settings, tmp_path):
    """`demo_setup` registers tiny-lm, tiny-vlm (policies) and tiny-reward once; the run form lists them and
    its placeholder names the tiny LM's folder, which exists."""
    settings.MODELS_DIR = tmp_path / "models"
    call_command("demo_setup", items=2, stdout=io.StringIO())
    call_command("demo_setup", items=2, stdout=io.StringIO())  # again: nothing registered twice
    registered = {a.name: a for a in ModelArtifact.objects.all()}
    assert set(registered) == {"tiny-lm", "tiny-vlm", "tiny-reward"}
    assert registered["tiny-reward"].kind == ArtifactKind.REWARD and registered["tiny-lm"].kind == ArtifactKind.POLICY
    for artifact in registered.values():
        assert json.loads((Path(artifact.location) / "config.json").read_text())

    client.force_login(admin_user)
    page = client.get("/runs/").content.decode()
    for artifact in registered.values():
        assert f'<option value="{artifact.pk}">{artifact.name} ({artifact.kind})</option>' in page
    placeholder = page.split('name="base_model"', 1)[1].split('placeholder="', 1)[1].split('"', 1)[0]
    assert placeholder == f"e.g. {tmp_path / 'models' / 'tiny-lm'}"
    assert (Path(placeholder.removeprefix("e.g. ")) / "config.json").is_file()
