"""The whole path once, through the API and a real Celery worker process: import → judgments → snapshot →
export → DPO run → a trained model whose weights differ from the base."""

import io
import json
import zipfile

import pytest

from tests.helpers import wait_for, write_shapes_import, zip_images

pytestmark = [pytest.mark.worker, pytest.mark.production_path]


def _judge_all(client, slug: str, truth_by_prompt_and_text: set[str]) -> int:
    """Answer every task as an annotator who prefers the true caption; returns how many were judged."""
    judged = 0
    while True:
        response = client.post(f"/api/v1/projects/{slug}/tasks/next/")
        if response.status_code == 204:
            return judged
        assert response.status_code == 200, response.content
        task = response.json()
        left, right = (r["text"] for r in task["responses"])
        choice = "a" if left in truth_by_prompt_and_text else "b"
        submitted = client.post(
            f"/api/v1/projects/{slug}/tasks/{task['assignment_id']}/submit/",
            {"choice": choice, "client_request_id": f"req-{task['assignment_id']}", "strength": 2},
            format="json",
        )
        assert submitted.status_code == 201, submitted.content
        judged += 1


def test_import_judge_snapshot_export_and_train_with_a_real_worker(
    celery_worker_process, tmp_path, admin_user, researcher, annotator, api_client_for, tiny_lm_dir
):
    """A researcher's import, an annotator's judgments and an admin's DPO run end in a new, different model."""
    import torch
    from transformers import AutoModelForCausalLM

    from training.models import JobStatus, ModelArtifact, TrainingRun

    admin, manager, worker_client = (api_client_for(u) for u in (admin_user, researcher, annotator))
    created = admin.post("/api/v1/projects/", {"slug": "e2e", "kind": "pairwise"}, format="json")
    assert created.status_code == 201, created.content
    for user, role in ((researcher, "manager"), (annotator, "annotator")):
        added = admin.post("/api/v1/projects/e2e/members/", {"username": user.username, "role": role}, format="json")
        assert added.status_code == 201

    jsonl = write_shapes_import(tmp_path / "import", n=8, seed=3)
    upload = {
        "file": io.BytesIO(jsonl.read_bytes()),
        "images": io.BytesIO(zip_images(jsonl)),
    }
    upload["file"].name, upload["images"].name = "items.jsonl", "images.zip"
    imported = manager.post("/api/v1/projects/e2e/imports/", upload, format="multipart")
    assert imported.status_code == 201, imported.content
    report = imported.json()
    assert {key: report[key] for key in ("created", "unchanged", "annotations", "pairs", "self_pairs_dropped")} == {
        "created": 8, "unchanged": 0, "annotations": 0, "pairs": 0, "self_pairs_dropped": 0,
    }  # fmt: skip

    items = [json.loads(line) for line in jsonl.read_text().splitlines()]
    truths = {item["responses"][0]["text"] for item in items}
    assert _judge_all(worker_client, "e2e", truths) == 8

    snapshot = manager.post("/api/v1/projects/e2e/snapshots/", {"test_fraction": 0.0}, format="json")
    assert snapshot.status_code == 201, snapshot.content
    snapshot_id = snapshot.json()["id"]
    assert snapshot.json()["n_rows"] == 8

    export = manager.get(f"/api/v1/snapshots/{snapshot_id}/export/?export_format=trl-jsonl")
    assert export.status_code == 200
    with zipfile.ZipFile(io.BytesIO(b"".join(export.streaming_content))) as bundle:
        rows = [json.loads(line) for line in bundle.read("pairs.jsonl").decode().splitlines()]
        manifest = json.loads(bundle.read("manifest.json"))
        assert all(image in bundle.namelist() for row in rows for image in row["images"])
    assert len(rows) == 8 and manifest["snapshot_hash"] == snapshot.json()["content_hash"]
    assert {row["chosen"] for row in rows} == truths

    started = admin.post(
        "/api/v1/training-runs/",
        {"method": "dpo", "snapshot": snapshot_id, "base_model": str(tiny_lm_dir), "config": {"max_steps": 4}},
        format="json",
    )
    assert started.status_code == 201, started.content
    run_id = started.json()["id"]

    def finished():
        run = TrainingRun.objects.get(pk=run_id)
        return run if run.status in (JobStatus.SUCCEEDED, JobStatus.FAILED) else None

    run = wait_for(finished, timeout=300, message=f"run {run_id} to finish")
    assert run.status == JobStatus.SUCCEEDED, run.log + celery_worker_process.log_path.read_text()[-3000:]
    detail = admin.get(f"/api/v1/training-runs/{run_id}/").json()
    assert detail["step"] == 4 and detail["progress"] == 1.0
    assert [m["step"] for m in detail["metrics"]] == [1, 2, 3, 4]
    assert all(isinstance(m["loss"], float) for m in detail["metrics"])

    artifact = ModelArtifact.objects.get(produced_by_id=run_id)
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    trained = AutoModelForCausalLM.from_pretrained(artifact.location)
    changed = [
        name
        for (name, before), (_, after) in zip(base.state_dict().items(), trained.state_dict().items(), strict=True)
        if not torch.equal(before, after)
    ]
    assert changed, "DPO left every weight of the base model as it was"


def test_a_run_that_crashes_is_failed_with_its_traceback(celery_worker_process, tmp_path, admin_user, api_client_for):
    """A base model that does not exist is refused before queuing; a run whose base model does not load ends
    `failed`, its log holds the traceback and its detail the cause in one line."""
    from annotation import services
    from training.models import JobStatus, TrainingRun

    project = services.project_create(slug="crash", kind="pairwise", created_by=admin_user)
    services.items_import(project=project, path=write_shapes_import(tmp_path / "i", n=2, seed=4))
    from annotation.models import Assignment

    for _ in range(2):
        assignment = services.assignment_next(project=project, annotator=admin_user)
        services.pairwise_judgment_submit(
            assignment_id=assignment.pk, annotator=admin_user, choice="a", client_request_id=f"c{assignment.pk}"
        )
    assert Assignment.objects.filter(status="submitted").count() == 2
    snapshot = services.snapshot_create(project=project, created_by=admin_user)
    api = api_client_for(admin_user)
    missing = api.post(
        "/api/v1/training-runs/",
        {"method": "dpo", "snapshot": snapshot.pk, "base_model": str(tmp_path / "no-such-model")},
        format="json",
    )
    assert missing.status_code == 400 and "no-such-model" in missing.json()["message"]  # refused before queuing
    broken = tmp_path / "broken-model"  # passes the check (a config.json) but no model loads from it
    broken.mkdir()
    (broken / "config.json").write_text("{}", encoding="utf-8")
    started = api.post(
        "/api/v1/training-runs/", {"method": "dpo", "snapshot": snapshot.pk, "base_model": str(broken)}, format="json"
    )
    assert started.status_code == 201
    run = wait_for(
        lambda: TrainingRun.objects.filter(pk=started.json()["id"], status=JobStatus.FAILED).first(),
        timeout=120,
        message="the run to fail",
    )
    assert "Traceback" in run.log
    cause = api.get(f"/api/v1/training-runs/{run.pk}/").json()["failure_cause"]
    assert "\n" not in cause and "Traceback" not in cause and "Error" in cause
