"""RLAIF-V rounds on the tiny VLM: two rounds of generate → label → snapshot → DPO keep each round's answers,
labeler job, AI-pair snapshot, training run and model, the models registered with lineage; a round that fails
stops the run with its cause and a resume finishes it without redoing a finished step; the same through a real
worker with `manage.py rounds --wait`; bad settings are refused naming the field; the API is for staff."""

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation import services as annotation_services
from annotation.models import AIFeedback, DatasetSnapshot, Item, JobStatus, LabelerJob, Response
from training import rounds
from training.models import ModelArtifact, Round, RoundsRun, RoundsStep, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def _config(labeler_dir: Path) -> dict:
    # Four prompts and two DPO steps: the loop's plumbing, not the model's quality, is tested. The untrained tiny
    # VLM as labeler rejects nearly every claim, so pairs come from answers with more claims than others: six
    # answers of up to 32 tokens per prompt give every round some (checked over several rounds' seeds).
    return {
        "labeler_model": str(labeler_dir),
        "labeler_config": {"batch_size": 32},
        "samples_per_prompt": 6,
        "max_new_tokens": 32,
        "balance_ai_lengths": False,
        "train_config": {"max_steps": 2, "save_steps": 1, "per_device_train_batch_size": 2},
    }


@pytest.fixture
def shapes_project(researcher, annotator, tmp_path):
    from tests.helpers import write_shapes_import

    project = annotation_services.project_create(slug="shapes-rounds", kind="pairwise", created_by=researcher)
    source = write_shapes_import(tmp_path / "rounds-src", n=4, seed=5)
    annotation_services.items_import(project=project, path=source, images=source.parent)
    return project


def _snapshot_rows(snapshot: DatasetSnapshot) -> list[dict]:
    return [json.loads(line) for line in Path(snapshot.path).read_text().splitlines() if line.strip()]


def _round_state(round_: Round) -> dict:
    """What a round kept, to compare before and after a resume."""
    return {
        "policy": round_.policy_id,
        "items": list(round_.item_ids),
        "generated_at": round_.generated_at,
        "labeler_job": round_.labeler_job_id,
        "snapshot": round_.snapshot_id,
        "training_run": round_.training_run_id,
        "model": round_.model_id,
        "responses": list(Response.objects.filter(item_id__in=round_.item_ids).values_list("id", "text")),
        "feedback": list(
            AIFeedback.objects.filter(response__item_id__in=round_.item_ids).values_list("id", "created_at")
        ),
    }


def _check_round(run: RoundsRun, round_: Round, *, policy: ModelArtifact) -> None:
    """A finished round: its answers sampled by `policy` on tagged copies of the prompts, each labelled, a
    snapshot of AI pairs on its own items only (chosen scored above rejected), and a model trained from
    `policy` on that snapshot."""
    assert round_.policy == policy
    items = list(Item.objects.filter(pk__in=round_.item_ids))
    assert len(items) == 4
    for item in items:
        tag = item.meta[rounds.ROUND_META_KEY]
        assert (tag["rounds_run"], tag["round"], tag["model"]) == (run.pk, round_.number, policy.name)
        assert tag["decoding"]["n"] == 6
        texts = list(item.responses.values_list("model_name", "text"))
        assert 1 <= len(texts) <= 6 and all(name == policy.name and text.strip() for name, text in texts)
    job = round_.labeler_job
    assert job.status == JobStatus.SUCCEEDED and sorted(job.item_ids) == sorted(round_.item_ids)
    feedback = AIFeedback.objects.filter(response__item_id__in=round_.item_ids)
    assert feedback.count() == Response.objects.filter(item_id__in=round_.item_ids).count()
    rows = _snapshot_rows(round_.snapshot)
    assert rows and {row["source"] for row in rows} == {"ai"}
    assert {row["item_key"] for row in rows} <= {item.external_id for item in items}
    score = {(f.response.item.external_id, f.response.text): f.score for f in feedback.select_related("response__item")}
    assert all(score[(r["item_key"], r["chosen"])] > score[(r["item_key"], r["rejected"])] for r in rows)
    training = round_.training_run
    assert (training.method, training.status, training.snapshot_id) == ("dpo", JobStatus.SUCCEEDED, round_.snapshot_id)
    assert training.base_artifact == policy
    model = round_.model
    assert (model.produced_by_id, model.base_id, model.snapshot_id) == (training.pk, policy.pk, round_.snapshot_id)
    assert (Path(model.location) / "config.json").is_file()
    assert round_.figures["ai_pairs"] == len(rows) and round_.figures["labelled"] == feedback.count()


def test_two_rounds_register_models_with_lineage_and_a_failed_round_resumes_at_its_step(
    shapes_project, tiny_vlm_dir, tmp_path, monkeypatch
):
    run = rounds.rounds_run_start(
        project=shapes_project, base_model=str(tiny_vlm_dir), n_rounds=2, config=_config(tiny_vlm_dir), created_by=None
    )
    base = run.base_artifact
    assert (base.name, base.location, base.base) == (tiny_vlm_dir.name, str(tiny_vlm_dir), None)

    # Round 2's training breaks for real (its base model's folder is not there while it starts), once.
    real_execute = rounds.training_run_execute
    broken: list[int] = []

    def execute_breaking_round_two(*, run_id: int) -> None:
        if Round.objects.get(training_run_id=run_id).number == 2 and not broken:
            broken.append(run_id)
            location = TrainingRun.objects.get(pk=run_id).base_model
            TrainingRun.objects.filter(pk=run_id).update(base_model=str(tmp_path / "no-such-model"))
            try:
                real_execute(run_id=run_id)
            finally:
                TrainingRun.objects.filter(pk=run_id).update(base_model=location)
        else:
            real_execute(run_id=run_id)

    monkeypatch.setattr(rounds, "training_run_execute", execute_breaking_round_two)
    rounds.rounds_run_execute(rounds_run_id=run.pk)

    run.refresh_from_db()
    assert (run.status, run.current_round, run.step) == (JobStatus.FAILED, 2, RoundsStep.TRAIN), run.log
    assert f"round 2 failed at train: training run {broken[0]} ended failed" in run.log
    first, second = Round.objects.filter(rounds_run=run).order_by("number")
    _check_round(run, first, policy=base)
    assert second.policy == first.model and second.snapshot_id and second.model_id is None
    assert TrainingRun.objects.get(pk=broken[0]).status == JobStatus.FAILED
    before = {1: _round_state(first), 2: _round_state(second)}
    counts = (Item.objects.count(), LabelerJob.objects.count(), DatasetSnapshot.objects.count())

    rounds.rounds_run_resume(rounds_run=run)
    rounds.rounds_run_execute(rounds_run_id=run.pk)

    run.refresh_from_db()
    assert (run.status, run.step, run.steps_done) == (JobStatus.SUCCEEDED, RoundsStep.DONE, 8), run.log
    first, second = Round.objects.filter(rounds_run=run).order_by("number")
    # Round 1 untouched; round 2 kept its answers, labels and snapshot and resumed its own training run.
    assert _round_state(first) == before[1]
    assert {k: v for k, v in _round_state(second).items() if k != "model"} == {
        k: v for k, v in before[2].items() if k != "model"
    }
    assert (Item.objects.count(), LabelerJob.objects.count(), DatasetSnapshot.objects.count()) == counts
    assert TrainingRun.objects.count() == 2 and second.training_run_id == broken[0]
    _check_round(run, second, policy=first.model)
    # Lineage: round 2's model ← round 1's model ← the base.
    assert second.model.base == first.model and first.model.base == base and base.base is None
    assert second.model != first.model


def test_manage_rounds_wait_runs_the_rounds_on_a_worker(celery_worker_process, shapes_project, tiny_vlm_dir, capsys):
    call_command(
        "rounds",
        project=shapes_project.slug,
        base_model=str(tiny_vlm_dir),
        n_rounds=2,
        config=json.dumps(_config(tiny_vlm_dir)),
        wait=True,
    )
    out = capsys.readouterr()
    run = RoundsRun.objects.get()
    worker_log = celery_worker_process.log_path.read_text()[-3000:]
    assert run.status == JobStatus.SUCCEEDED, run.log + worker_log
    assert f"Rounds run {run.pk} succeeded" in out.out and "step" in out.err
    first, second = Round.objects.filter(rounds_run=run).order_by("number")
    assert f"Round 1: {first.policy.name} -> {first.model.name}" in out.out
    assert second.policy == first.model and second.model.base == first.model and first.model.base == first.policy
    assert first.policy.location == str(tiny_vlm_dir)
    assert all(DatasetSnapshot.objects.get(pk=r.snapshot_id).n_rows > 0 for r in (first, second))


def test_bad_settings_are_refused_naming_the_field(shapes_project, tiny_vlm_dir, admin_user, api_client_for):
    cases = [
        ({}, "labeler_model"),
        ({**_config(tiny_vlm_dir), "samples_per_prompt": 1}, "samples_per_prompt"),
        ({**_config(tiny_vlm_dir), "method": "ppo"}, "method"),
        ({**_config(tiny_vlm_dir), "train_config": {"max_stepz": 2}}, "max_stepz"),
        ({**_config(tiny_vlm_dir), "labeler_config": {"batch_size": 0}}, "batch_size"),
        ({**_config(tiny_vlm_dir), "colour": "red"}, "colour"),
    ]
    for config, named in cases:
        with pytest.raises(rounds.ApplicationError, match=named):
            rounds.rounds_run_start(
                project=shapes_project, base_model=str(tiny_vlm_dir), n_rounds=2, config=config, created_by=None
            )
    with pytest.raises(CommandError, match="--rounds"):
        call_command("rounds", project=shapes_project.slug, base_model=str(tiny_vlm_dir))
    with pytest.raises(CommandError, match="labeler_model"):
        call_command("rounds", project=shapes_project.slug, base_model=str(tiny_vlm_dir), n_rounds=1)
    client = api_client_for(admin_user)
    refused = client.post(
        "/api/v1/rounds/",
        {"project": shapes_project.slug, "base_model": str(tiny_vlm_dir), "n_rounds": 2, "config": {"top_p": 0}},
        format="json",
    )
    assert refused.status_code == 400 and "top_p" in refused.json()["message"]
    reward = ModelArtifact.objects.create(name="judge", location=str(tiny_vlm_dir) + "-reward", kind="reward")
    refused = client.post(
        "/api/v1/rounds/",
        {"project": shapes_project.slug, "base_model": "judge", "n_rounds": 2, "config": _config(tiny_vlm_dir)},
        format="json",
    )
    assert refused.status_code == 400 and "judge is not a full policy model" in refused.json()["message"]
    # Nothing was queued, and no base model was registered on the way.
    assert not RoundsRun.objects.exists()
    assert list(ModelArtifact.objects.all()) == [reward]


def test_rounds_api_is_for_staff_and_shows_each_round(
    shapes_project, tiny_vlm_dir, admin_user, researcher, api_client_for
):
    staff = api_client_for(admin_user)
    started = staff.post(
        "/api/v1/rounds/",
        {
            "project": shapes_project.slug,
            "base_model": str(tiny_vlm_dir),
            "n_rounds": 2,
            "config": _config(tiny_vlm_dir),
        },
        format="json",
    )
    assert started.status_code == 201, started.content
    body = started.json()
    assert (body["status"], body["n_rounds"], body["steps_total"], body["base_model"]) == (
        "queued",
        2,
        8,
        tiny_vlm_dir.name,  # registered under its folder's name
    )
    run = RoundsRun.objects.get(pk=body["id"])
    Round.objects.create(rounds_run=run, number=1, policy=run.base_artifact, figures={"answers": 12})
    detail = staff.get(f"/api/v1/rounds/{run.pk}/").json()
    assert [(r["number"], r["policy"]["name"], r["figures"]) for r in detail["rounds"]] == [
        (1, tiny_vlm_dir.name, {"answers": 12})
    ]
    assert [r["id"] for r in staff.get("/api/v1/rounds/").json()] == [run.pk]
    assert staff.post(f"/api/v1/rounds/{run.pk}/resume/").status_code == 400  # queued: nothing to resume
    assert staff.post(f"/api/v1/rounds/{run.pk}/cancel/").json()["status"] == "cancelled"
    assert staff.post(f"/api/v1/rounds/{run.pk}/resume/").json()["status"] == "queued"
    other = api_client_for(researcher)  # manages the project, but training is for staff
    assert other.get("/api/v1/rounds/").status_code == 404
    assert other.get(f"/api/v1/rounds/{run.pk}/").status_code == 404
    assert other.post(f"/api/v1/rounds/{run.pk}/cancel/").status_code == 404


def test_the_admin_starts_a_run_and_its_action_resumes_a_failed_one(shapes_project, tiny_vlm_dir, admin_user, client):
    client.force_login(admin_user)
    form = {"project": shapes_project.pk, "base_model": str(tiny_vlm_dir), "n_rounds": 2}
    refused = client.post("/admin/training/roundsrun/add/", {**form, "config": json.dumps({"samples_per_prompt": 4})})
    assert refused.status_code == 200 and "labeler_model" in refused.content.decode()
    assert not RoundsRun.objects.exists()

    added = client.post("/admin/training/roundsrun/add/", {**form, "config": json.dumps(_config(tiny_vlm_dir))})
    assert added.status_code == 302, added.content.decode()[-2000:]
    run = RoundsRun.objects.get()
    assert (run.status, run.n_rounds, run.base_artifact.location) == (JobStatus.QUEUED, 2, str(tiny_vlm_dir))
    Round.objects.create(rounds_run=run, number=1, policy=run.base_artifact)
    assert client.get(f"/admin/training/roundsrun/{run.pk}/change/").status_code == 200

    RoundsRun.objects.filter(pk=run.pk).update(status=JobStatus.FAILED, current_round=1, step=RoundsStep.LABEL)
    acted = client.post(
        "/admin/training/roundsrun/", {"action": "start_or_resume", "_selected_action": [run.pk]}, follow=True
    )
    assert "Resumed 1 rounds run" in acted.content.decode()
    run.refresh_from_db()
    assert (run.status, run.current_round, run.step) == (JobStatus.QUEUED, 1, RoundsStep.LABEL)
    assert "resume requested (round 1, label)" in run.log
