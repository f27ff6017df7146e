"""TRL's trainers load Loupe's exports as they are: DPOTrainer each preference export (JSONL, Parquet,
datasets directory; text and, with images, a vision-language model), RewardTrainer the reward rows.
One training step each on the session's tiny models, on CPU (no GPU here)."""

import json

import pytest

from annotation import services
from tests.annotation.feedback import judge, people, project_with_items, refresh, responses_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def text_snapshot(researcher):
    items = {f"i{i}": [f"a red circle number {i}", f"a blue square {i}"] for i in range(8)}
    project = project_with_items("trainers", "pairwise", items, created_by=researcher)
    (person,) = people("judge", 1)
    for i in range(8):
        good, bad = responses_of(project, f"i{i}")
        judge(good, bad, person, "a")
    refresh(project)
    return services.snapshot_create(
        project=project, created_by=None, snapshot_filter=services.SnapshotFilter(test_fraction=0)
    )


def _one_step(trainer_class, config_class, *, model, dataset, processing_class, output_dir):
    args = config_class(
        output_dir=str(output_dir), max_steps=1, per_device_train_batch_size=2, report_to=[], bf16=False,
        save_strategy="no", use_cpu=True, activation_checkpointing=False, logging_steps=1,
    )  # fmt: skip
    trainer = trainer_class(model=str(model), args=args, train_dataset=dataset, processing_class=processing_class)
    return trainer.train().training_loss


def _load(export_format, out):
    import datasets

    if export_format == "trl-jsonl":
        return datasets.load_dataset("json", data_files=str(out / "pairs.jsonl"), split="train")
    if export_format == "trl-parquet":
        return datasets.load_dataset("parquet", data_files=str(out / "pairs.parquet"), split="train")
    return datasets.load_from_disk(str(out))


@pytest.mark.parametrize("export_format", ["trl-jsonl", "trl-parquet", "hf-dataset"])
def test_dpo_trainer_trains_on_each_text_export(text_snapshot, export_format, tiny_lm_dir, tmp_path):
    """A text model's DPOTrainer takes the export without any conversion and trains a step (loss ln 2 at
    the start, policy = reference)."""
    import math

    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    out = services.snapshot_export(snapshot=text_snapshot, export_format=export_format, out=tmp_path / "export")
    dataset = _load(export_format, out)
    assert dataset.column_names == ["prompt", "chosen", "rejected"] and len(dataset) == 8
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    loss = _one_step(
        DPOTrainer,
        DPOConfig,
        model=tiny_lm_dir,
        dataset=dataset,
        processing_class=tokenizer,
        output_dir=tmp_path / "run",
    )
    assert loss == pytest.approx(math.log(2), abs=1e-3)


def test_reward_trainer_trains_on_the_reward_rows(text_snapshot, tiny_reward_dir, tmp_path):
    """RewardTrainer reads `prompt, chosen, rejected, margin` as exported and trains a step."""
    import datasets
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    out = services.snapshot_export(snapshot=text_snapshot, export_format="reward-jsonl", out=tmp_path / "export")
    dataset = datasets.load_dataset("json", data_files=str(out / "reward.jsonl"), split="train")
    assert set(dataset.column_names) == {"prompt", "chosen", "rejected", "margin"}
    tokenizer = AutoTokenizer.from_pretrained(tiny_reward_dir)
    loss = _one_step(
        RewardTrainer, RewardConfig, model=tiny_reward_dir, dataset=dataset, processing_class=tokenizer,
        output_dir=tmp_path / "run",
    )  # fmt: skip
    assert loss > 0


@pytest.mark.parametrize("export_format", ["trl-parquet", "hf-dataset"])
def test_dpo_trainer_trains_a_vision_model_on_the_default_export_with_images(
    pairwise_project, shapes_import, annotator, tiny_vlm_dir, tmp_path, export_format
):
    """With images, the default Parquet and datasets exports (no option given) feed a vision-language
    model's stock DPOTrainer directly: they are in trl's conversational form, which its vision collator
    places the images by (the standard form fails there: "0 <image> tokens and 2 images")."""
    from transformers import AutoProcessor
    from trl import DPOConfig, DPOTrainer

    services.items_import(project=pairwise_project, path=shapes_import)
    for line in shapes_import.read_text().splitlines():
        truth, hallucinated = responses_of(pairwise_project, json.loads(line)["external_id"])
        judge(truth, hallucinated, annotator, "a")
    refresh(pairwise_project)
    snapshot = services.snapshot_create(project=pairwise_project, created_by=None)
    out = services.snapshot_export(snapshot=snapshot, export_format=export_format, out=tmp_path / "export")
    dataset = _load(export_format, out)
    assert dataset[0]["images"][0].size == (96, 96)
    processor = AutoProcessor.from_pretrained(tiny_vlm_dir)
    loss = _one_step(
        DPOTrainer,
        DPOConfig,
        model=tiny_vlm_dir,
        dataset=dataset,
        processing_class=processor,
        output_dir=tmp_path / "run",
    )
    assert loss > 0


def test_loupe_ddpo_trains_a_text_model_on_the_dense_export(text_snapshot, tiny_lm_dir, tmp_path):
    """The dense-jsonl export (pairs with spans; text rows carry ``"images": []``) trains Loupe's DDPO on a text
    model as it is: the empty images column is no vision data, and the diff finds the changed words."""
    from training.core import load_preference_dataset
    from training.methods.ddpo import DDPOConfig, train_ddpo

    out = services.snapshot_export(snapshot=text_snapshot, export_format="dense-jsonl", out=tmp_path / "export")
    rows = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(row["images"] == [] for row in rows)
    assert "images" not in load_preference_dataset(out / "pairs.jsonl").column_names
    result = train_ddpo(
        config=DDPOConfig(max_steps=2, per_device_train_batch_size=4, logging_steps=1),
        train_path=out / "pairs.jsonl",
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "run",
    )
    assert result.steps == 2
    assert result.history[0]["changed_token_fraction"] > 0
