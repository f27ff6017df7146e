"""The skeleton's command-line path and the admin's "start a run" form, as a researcher and an admin use them."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotation import services
from annotation.models import DatasetSnapshot, Project
from training.models import JobStatus, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def _judged_project(tmp_path, researcher, annotator) -> Project:
    from tests.helpers import write_shapes_import

    out = io.StringIO()
    call_command(
        "create_project",
        "cli-demo",
        "--kind",
        "pairwise",
        "--owner",
        researcher.username,
        "--annotator",
        annotator.username,
        stdout=out,
    )
    assert "Created pairwise project cli-demo" in out.getvalue()
    call_command(
        "import_items",
        str(write_shapes_import(tmp_path / "in", n=4, seed=9)),
        "--project",
        "cli-demo",
        stdout=io.StringIO(),
    )
    project = Project.objects.get(slug="cli-demo")
    while (assignment := services.assignment_next(project=project, annotator=annotator)) is not None:
        services.pairwise_judgment_submit(
            assignment_id=assignment.pk, annotator=annotator, choice="b", client_request_id=str(assignment.pk)
        )
    return project


def test_snapshot_and_export_from_the_command_line(tmp_path, researcher, annotator):
    """`snapshot` prints the id of a frozen snapshot; `export_dataset` writes rows trl reads."""
    _judged_project(tmp_path, researcher, annotator)
    out = io.StringIO()
    call_command("snapshot", "--project", "cli-demo", "--test-fraction", "0", stdout=out, stderr=io.StringIO())
    snapshot = DatasetSnapshot.objects.get(pk=int(out.getvalue().strip()))
    assert snapshot.n_rows == 4 and len(snapshot.content_hash) == 64

    again = io.StringIO()
    call_command("snapshot", "--project", "cli-demo", "--test-fraction", "0", stdout=again, stderr=io.StringIO())
    assert again.getvalue() == out.getvalue(), "the same pairs and filter froze into a second snapshot"

    call_command(
        "export_dataset",
        "--snapshot",
        str(snapshot.pk),
        "--format",
        "trl-jsonl",
        "--out",
        str(tmp_path / "export"),
        stdout=io.StringIO(),
    )
    rows = [json.loads(line) for line in (tmp_path / "export" / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    assert all(set(row) >= {"prompt", "chosen", "rejected", "images"} for row in rows)
    assert all((tmp_path / "export" / row["images"][0]).is_file() for row in rows)
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["snapshot_hash"] == snapshot.content_hash and manifest["counts"]["rows"] == 4


def test_train_queues_a_run_and_refuses_a_bad_config(tmp_path, researcher, annotator, tiny_lm_dir):
    """`train` queues a run for a worker; an unknown config field is refused before anything is queued."""
    project = _judged_project(tmp_path, researcher, annotator)
    snapshot = services.snapshot_create(project=project, created_by=None)
    with pytest.raises(CommandError, match="Unknown config field"):
        call_command(
            "train",
            "--method",
            "dpo",
            "--snapshot",
            str(snapshot.pk),
            "--base-model",
            str(tiny_lm_dir),
            "--config",
            '{"max_stepz": 3}',
            stdout=io.StringIO(),
        )
    with pytest.raises(CommandError, match="beta must be positive"):
        call_command(
            "train",
            "--method",
            "dpo",
            "--snapshot",
            str(snapshot.pk),
            "--base-model",
            str(tiny_lm_dir),
            "--config",
            '{"beta": -1}',
            stdout=io.StringIO(),
        )
    assert TrainingRun.objects.count() == 0
    out = io.StringIO()
    call_command(
        "train",
        "--method",
        "dpo",
        "--snapshot",
        str(snapshot.pk),
        "--base-model",
        str(tiny_lm_dir),
        "--config",
        '{"max_steps": 3}',
        stdout=out,
    )
    run = TrainingRun.objects.get()
    assert f"Queued training run {run.pk}" in out.getvalue()
    assert (run.status, run.config["max_steps"], run.base_model) == (JobStatus.QUEUED, 3, str(tiny_lm_dir))


def test_the_admin_starts_a_run_through_the_same_checks(client, tmp_path, admin_user, researcher, annotator):
    """The admin's add form queues a valid run and shows the config error of an invalid one."""
    project = _judged_project(tmp_path, researcher, annotator)
    snapshot = services.snapshot_create(project=project, created_by=None)
    client.force_login(admin_user)
    form = {"method": "dpo", "snapshot": snapshot.pk, "base_model": "tiny", "config": '{"beta": 0}'}
    refused = client.post("/admin/training/trainingrun/add/", form)
    assert refused.status_code == 200 and b"beta must be positive" in refused.content
    assert TrainingRun.objects.count() == 0
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}", encoding="utf-8")  # the run checks want a model folder
    form.update(config='{"max_steps": 2}', base_model=str(tmp_path / "base"))
    accepted = client.post("/admin/training/trainingrun/add/", form)
    assert accepted.status_code == 302
    run = TrainingRun.objects.get()
    assert (run.method, run.status, run.config["max_steps"]) == ("dpo", JobStatus.QUEUED, 2)


def test_make_tiny_model_writes_a_model_from_pretrained_loads(tmp_path):
    """The command writes a VLM with its processor, loadable by name of its folder, without any network."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    call_command("make_tiny_model", "--kind", "vlm", "--out", str(tmp_path / "vlm"), stdout=io.StringIO())
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "vlm")
    processor = AutoProcessor.from_pretrained(tmp_path / "vlm")
    assert model.config.vision_config is not None and processor.tokenizer.vocab_size > 0
