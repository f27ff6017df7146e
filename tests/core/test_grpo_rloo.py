"""trl's GRPO and RLOO run on a snapshot's prompts with Loupe's reward sources: a reward model for a text model,
a scorer function for a vision-language model that sees each prompt's image."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

from tests.training import scorers
from training.methods.grpo import GRPOConfig, RLOOConfig, train_grpo, train_rloo

METHODS = [(train_grpo, GRPOConfig), (train_rloo, RLOOConfig)]


@pytest.mark.parametrize(("train", "config_class"), METHODS, ids=["grpo", "rloo"])
def test_trains_the_tiny_lm_with_a_reward_model(
    train, config_class, tiny_lm_dir, tiny_reward_dir, text_preference_file, tmp_path, recording_hooks
):
    """Two steps rewarded by the tiny reward model log a finite loss, the mean reward and KL, and move the
    policy's weights."""
    hooks = recording_hooks()
    result = train(
        config=config_class(
            max_steps=2, reward_model=str(tiny_reward_dir), learning_rate=1e-3, max_completion_length=8
        ),
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "out",
        hooks=hooks,
    )
    assert result.steps == 2
    steps = [metrics for _, _, metrics in hooks.steps if "loss" in metrics]
    assert len(steps) == 2
    for metrics in steps:
        assert {"reward", "kl", "learning_rate"} <= metrics.keys()
        assert all(math.isfinite(v) for v in metrics.values())
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    trained = AutoModelForCausalLM.from_pretrained(result.output_dir)
    assert not torch.equal(base.lm_head.weight, trained.lm_head.weight)


@pytest.mark.parametrize(("train", "config_class"), METHODS, ids=["grpo", "rloo"])
def test_trains_the_tiny_vlm_with_a_scorer_that_sees_images(
    train, config_class, tiny_vlm_dir, image_preference_file, tmp_path
):
    """With a VLM every sampled answer reaches the scorer with its prompt's image."""
    scorers.CALLS.clear()
    result = train(
        config=config_class(max_steps=1, reward_function="tests.training.scorers:recording", max_completion_length=8),
        train_path=image_preference_file,
        base_model=str(tiny_vlm_dir),
        output_dir=tmp_path / "vout",
    )
    assert result.steps == 1 and math.isfinite(result.metrics["loss"])
    assert scorers.CALLS and all(len(call["images"]) == len(call["completions"]) for call in scorers.CALLS)
    assert all(images[0].size == (96, 96) for call in scorers.CALLS for images in call["images"])
    AutoModelForImageTextToText.from_pretrained(result.output_dir)


def test_group_size_must_divide_the_batch():
    """A batch that cannot hold whole groups of answers is refused when the config is made."""
    with pytest.raises(ValueError, match="multiple of num_generations"):
        GRPOConfig(
            reward_function="tests.training.scorers:word_count", per_device_train_batch_size=6, num_generations=4
        )
    with pytest.raises(ValueError, match="at least 2"):
        RLOOConfig(reward_function="tests.training.scorers:word_count", num_generations=1)
