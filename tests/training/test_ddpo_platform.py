"""DDPO as the platform feeds it: non-correction feedback (pairwise judgments, rankings) → pairs snapshot → the
training file a DDPO run writes and reads → the DDPO collator's batch. Such pairs carry empty span lists; their
changed tokens must come from the token diff, on both sides, and weigh gamma in the loss."""

import math

import pytest
import torch

from annotation import services
from tests.annotation.feedback import judge, people, project_with_items, rank, refresh, responses_of

pytestmark = pytest.mark.django_db

GAMMA = 5.0
# Each item: (preferred answer, worse answer), and the words that differ (chosen side, rejected side).
ANSWERS = {
    "i0": ("There is a red circle at the top left.", "There is a blue circle at the top left.", "red", "blue"),
    "i1": ("A green star is in the middle.", "A yellow star is in the middle.", "green", "yellow"),
    "i2": ("I can see two squares near the bottom.", "I can see three squares near the bottom.", "two", "three"),
    "i3": ("The purple triangle is on the right.", "The orange triangle is on the right.", "purple", "orange"),
}


def _pairwise_project(researcher):
    project = project_with_items(
        "ddpo-pairwise", "pairwise", {key: list(texts[:2]) for key, texts in ANSWERS.items()}, created_by=researcher
    )
    (person,) = people("ddpo-judge", 1)
    for key in ANSWERS:
        good, bad = responses_of(project, key)
        judge(bad, good, person, "b")  # the preferred answer shown second, so order does not decide
    return project


def _ranking_project(researcher):
    project = project_with_items(
        "ddpo-ranking", "ranking", {key: list(texts[:2]) for key, texts in ANSWERS.items()}, created_by=researcher
    )
    (person,) = people("ddpo-ranker", 1)
    for key in ANSWERS:
        good, bad = responses_of(project, key)
        rank([good, bad], person)
    return project


def _training_file(project, out_dir):
    """The project's pairs frozen in a snapshot and written as a DDPO run writes them before it trains."""
    from training.services import _write_training_files

    refresh(project)
    snapshot = services.snapshot_create(
        project=project, created_by=None, snapshot_filter=services.SnapshotFilter(test_fraction=0)
    )
    train_path, _ = _write_training_files(snapshot=snapshot, run_dir=out_dir, with_images=False)
    return train_path


def _changed_words(tokenizer, batch, row):
    changed = batch["changed_mask"][row].bool() & batch["completion_mask"][row].bool()
    return tokenizer.decode(batch["input_ids"][row][changed]).split()


def _answer(tokenizer, batch, row):
    return tokenizer.decode(batch["input_ids"][row][batch["completion_mask"][row].bool()], skip_special_tokens=True)


@pytest.mark.parametrize("source", ["pairwise", "ranking"])
def test_non_correction_pairs_get_gamma_weighted_changed_tokens_on_both_sides(
    source, researcher, tiny_lm_dir, tmp_path
):
    """Pairs from judgments and rankings reach the DDPO batch with their differing words marked on the chosen
    and on the rejected side, nothing else marked, and gamma changes the loss (it was DPO before)."""
    import json

    from training.methods.ddpo import DDPOConfig, DDPOTrainer
    from training.methods.dpo import make_preference_trainer

    project = (_pairwise_project if source == "pairwise" else _ranking_project)(researcher)
    train_path = _training_file(project, tmp_path / "data")
    rows = [json.loads(line) for line in train_path.read_text().splitlines()]
    assert len(rows) == len(ANSWERS)
    assert all(row["chosen_spans"] == [] and row["rejected_spans"] == [] for row in rows)  # as the platform writes

    trainer = make_preference_trainer(
        trainer_class=DDPOTrainer,
        config=DDPOConfig(per_device_train_batch_size=len(ANSWERS)),
        train_path=train_path,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "out",
        eval_path=None,
        gamma=GAMMA,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    tokenizer = trainer.processing_class
    by_chosen = {chosen: (rejected, word_c, word_r) for chosen, rejected, word_c, word_r in ANSWERS.values()}
    n = batch["input_ids"].shape[0] // 2
    assert n == len(ANSWERS)
    for i in range(n):
        rejected, word_c, word_r = by_chosen[_answer(tokenizer, batch, i)]
        assert _answer(tokenizer, batch, n + i) == rejected
        assert _changed_words(tokenizer, batch, i) == [word_c]
        assert _changed_words(tokenizer, batch, n + i) == [word_r]

    # gamma weighs those tokens: with the policy moved off the reference, the loss at GAMMA is not the gamma = 1
    # loss (with no changed token, as before the fix, the two are equal).
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in trainer.model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
        dense = trainer.compute_loss(trainer.model, batch).item()
        trainer.gamma = 1.0
        flat = trainer.compute_loss(trainer.model, batch).item()
    assert abs(dense - math.log(2)) > 1e-3
    assert abs(dense - flat) > 1e-4
