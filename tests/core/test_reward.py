"""Reward models train with Bradley-Terry on text and vision models, report held-out pairwise accuracy, learn a
separable preference, and score answers after reloading exactly as they scored them in training."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from training.core import read_model_info
from training.methods.reward import RewardConfig, VisionRewardModel, load_reward_model, train_reward
from training.rewards import RewardModelScorer, load_reward_scorer


def pairwise_accuracy(scorer, path) -> float:
    """Fraction of a preference file's pairs whose chosen answer the scorer rates above the rejected one."""
    from training.core import load_preference_dataset

    rows = list(load_preference_dataset(path))
    images = [row.get("images") or [] for row in rows]
    has_images = any(images)
    prompts = [row["prompt"] for row in rows]
    chosen = scorer(prompts=prompts, completions=[r["chosen"] for r in rows], images=images if has_images else None)
    rejected = scorer(prompts=prompts, completions=[r["rejected"] for r in rows], images=images if has_images else None)
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(rows)


def test_reward_model_trains_on_the_tiny_lm(tiny_lm_dir, text_preference_file, tmp_path, recording_hooks):
    """Three steps from a causal LM give a sequence-classification reward model: finite loss and pairwise
    metrics every step, an evaluation with eval accuracy, a changed backbone and a new head."""
    hooks = recording_hooks()
    result = train_reward(
        config=RewardConfig(max_steps=3, per_device_train_batch_size=4, save_steps=10),
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "rm",
        eval_path=text_preference_file,
        hooks=hooks,
    )
    assert result.steps == 3
    train_steps = [metrics for _, _, metrics in hooks.steps if "loss" in metrics]
    assert len(train_steps) == 3
    for metrics in train_steps:
        assert {"rewards/accuracies", "rewards/margins", "learning_rate"} <= metrics.keys()
        assert all(math.isfinite(v) for v in metrics.values())
    assert 0 <= result.metrics["eval_rewards/accuracies"] <= 1
    assert read_model_info(result.output_dir)["kind"] == "reward"

    model, _, use_template = load_reward_model(result.output_dir)
    assert model.config.num_labels == 1 and use_template
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    assert not torch.equal(base.model.layers[0].self_attn.q_proj.weight, model.model.layers[0].self_attn.q_proj.weight)


def test_vision_reward_model_trains_on_images_and_reloads(tiny_vlm_dir, image_preference_file, tmp_path):
    """A VLM reward model trains on rows with images, and the reloaded folder gives the same scores as the
    trained model for the same prompt, answer and image; the image changes the score."""
    result = train_reward(
        config=RewardConfig(max_steps=2, per_device_train_batch_size=2),
        train_path=image_preference_file,
        base_model=str(tiny_vlm_dir),
        output_dir=tmp_path / "vrm",
    )
    assert result.steps == 2 and math.isfinite(result.metrics["loss"])
    scorer = RewardModelScorer(str(result.output_dir))
    assert isinstance(scorer.model, VisionRewardModel)
    from training.core import load_preference_dataset

    rows = load_preference_dataset(image_preference_file)
    prompts, answers = [rows[0]["prompt"]] * 2, [rows[0]["chosen"]] * 2
    scores = scorer(prompts=prompts, completions=answers, images=[rows[0]["images"], rows[1]["images"]])
    again = RewardModelScorer(str(result.output_dir))(
        prompts=prompts, completions=answers, images=[rows[0]["images"]] * 2
    )
    assert again[0] == pytest.approx(scores[0], abs=1e-5) and again[1] == pytest.approx(scores[0], abs=1e-5)
    assert abs(scores[0] - scores[1]) > 1e-4


def test_reward_model_learns_a_separable_preference(tiny_lm_dir, separable_preferences, tmp_path):
    """An answer that answers the question asked beats one naming the other kind of thing: after 24 steps the
    reward model ranks more than 90% of held-out pairs (sentences no training row holds) right, the untrained
    one does not."""
    train, heldout = separable_preferences
    untrained = train_reward(
        config=RewardConfig(max_steps=1, learning_rate=1e-12),
        train_path=train,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "untrained",
    )
    before = pairwise_accuracy(load_reward_scorer(reward_model=str(untrained.output_dir)), heldout)
    result = train_reward(
        config=RewardConfig(max_steps=24, learning_rate=1e-3, per_device_train_batch_size=8, save_steps=100),
        train_path=train,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "trained",
        eval_path=heldout,
    )
    after = pairwise_accuracy(load_reward_scorer(reward_model=str(result.output_dir)), heldout)
    assert before < 0.9
    assert after > 0.9
    assert result.metrics["eval_rewards/accuracies"] == pytest.approx(after, abs=0.02)  # trainer and scorer agree


def test_the_reward_head_is_drawn_from_the_config_seed(tiny_lm_dir, text_preference_file, tmp_path):
    """The new score head comes from config.seed, not from whatever the global random state was: two runs
    with one seed start from the same head after different draws, another seed starts elsewhere."""

    def first_head(seed: int, global_seed: int) -> torch.Tensor:
        torch.manual_seed(global_seed)
        # One step at a learning rate no fp32 head weight feels: what is saved is the initial head.
        result = train_reward(
            config=RewardConfig(max_steps=1, learning_rate=1e-30, seed=seed, save_steps=100),
            train_path=text_preference_file,
            base_model=str(tiny_lm_dir),
            output_dir=tmp_path / f"rm-{seed}-{global_seed}",
        )
        return load_reward_model(result.output_dir)[0].score.weight.detach().clone()

    head = first_head(seed=3, global_seed=1)
    assert torch.equal(head, first_head(seed=3, global_seed=2))
    assert not torch.equal(head, first_head(seed=4, global_seed=1))
