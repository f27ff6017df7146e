"""Loupe's PPO: its pieces (GAE, clipped objectives, KL-penalised rewards, adaptive KL) compute what the papers
say, and the loop trains text and vision models, raises the reward it is given, stops and resumes exactly; with
dropout in the model each update starts at ratio 1, its log-probs are those of the sampling temperature, and
under two processes its schedule runs once."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.training import scorers
from training.core import NullHooks, read_model_info
from training.generation import load_policy, sample_answers
from training.methods.ppo import (
    AdaptiveKLController,
    PPOConfig,
    _PPORun,
    clipped_policy_loss,
    clipped_value_loss,
    gae_advantages,
    kl_penalised_rewards,
    prompt_rows,
    step_prompt_indices,
    train_ppo,
)

# ------------------------------------------------------------------------------------------------ numerics


def test_gae_with_lambda_one_is_return_minus_value_and_with_zero_is_the_td_error():
    """lambda = 1 gives the discounted return minus the value; lambda = 0 the one-step TD error."""
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.2, 0.1]])
    mask = torch.ones(1, 3)
    advantages, returns = gae_advantages(rewards=rewards, values=values, mask=mask, gamma=1.0, lam=1.0)
    torch.testing.assert_close(advantages, torch.tensor([[0.5, 0.8, 0.9]]))
    torch.testing.assert_close(returns, torch.tensor([[1.0, 1.0, 1.0]]))
    advantages, _ = gae_advantages(rewards=rewards, values=values, mask=mask, gamma=1.0, lam=0.0)
    torch.testing.assert_close(advantages, torch.tensor([[-0.3, -0.1, 0.9]]))
    advantages, _ = gae_advantages(rewards=rewards, values=values, mask=mask, gamma=0.5, lam=1.0)
    torch.testing.assert_close(advantages, torch.tensor([[0.25 - 0.5, 0.5 - 0.2, 1.0 - 0.1]]))


def test_gae_ignores_positions_after_the_answer():
    """A value estimate past the answer's end does not leak into the last real token's advantage."""
    rewards = torch.tensor([[0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.2, 9.0]])
    advantages, _ = gae_advantages(rewards=rewards, values=values, mask=torch.tensor([[1.0, 1.0, 0.0]]), gamma=1, lam=1)
    torch.testing.assert_close(advantages, torch.tensor([[0.5, 0.8, 0.0]]))


def test_policy_loss_clips_a_ratio_that_ran_too_far():
    """With a positive advantage, a ratio above 1 + eps is clipped (no gradient, counted in clipfrac); a ratio
    below 1 is not."""
    old = torch.zeros(1, 2)
    logps = torch.log(torch.tensor([[1.5, 0.5]])).requires_grad_()
    advantages = torch.ones(1, 2)
    loss, stats = clipped_policy_loss(
        logps=logps, old_logps=old, advantages=advantages, mask=torch.ones(1, 2), cliprange=0.2
    )
    assert loss.item() == pytest.approx((-1.2 - 0.5) / 2)
    assert stats["policy/clipfrac"].item() == pytest.approx(0.5)
    loss.backward()
    assert logps.grad[0, 0].item() == 0.0 and logps.grad[0, 1].item() < 0


def test_value_loss_takes_the_worse_of_clipped_and_unclipped():
    """A value update beyond the clip range is charged the clipped error when that is larger."""
    loss, clipfrac = clipped_value_loss(
        values=torch.tensor([[2.0]]),
        old_values=torch.tensor([[0.0]]),
        returns=torch.tensor([[2.0]]),
        mask=torch.ones(1, 1),
        cliprange_value=0.2,
    )
    assert loss.item() == pytest.approx(0.5 * (2.0 - 0.2) ** 2)
    assert clipfrac.item() == 1.0


def test_rewards_carry_the_kl_penalty_on_every_token_and_the_score_on_the_last():
    """The score lands on each answer's last real token; every token pays kl_coef times its log-ratio."""
    logps = torch.tensor([[-1.0, -1.0, -1.0], [-2.0, -2.0, -2.0]])
    ref = torch.tensor([[-1.5, -1.0, -1.0], [-2.0, -2.5, -2.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards, kl = kl_penalised_rewards(
        scores=torch.tensor([3.0, 5.0]), logps=logps, ref_logps=ref, mask=mask, kl_coef=0.1
    )
    torch.testing.assert_close(kl, torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]))
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, 0.0, 3.0], [0.0, 5.0 - 0.05, 0.0]]))


def test_adaptive_kl_moves_the_coefficient_towards_the_target_and_at_most_twenty_percent():
    """Too much KL raises the coefficient, too little lowers it, by at most 20% times n / horizon."""
    high = AdaptiveKLController(init_kl_coef=0.1, target=6.0, horizon=100)
    high.update(current_kl=60.0, n_steps=100)
    assert high.value == pytest.approx(0.12)
    low = AdaptiveKLController(init_kl_coef=0.1, target=6.0, horizon=100)
    low.update(current_kl=5.4, n_steps=50)
    assert low.value == pytest.approx(0.1 * (1 - 0.1 * 0.5))
    fixed = AdaptiveKLController(init_kl_coef=0.1, target=None, horizon=100)
    fixed.update(current_kl=60.0, n_steps=100)
    assert fixed.value == 0.1


def test_each_step_takes_its_own_prompts_and_every_prompt_comes_once_per_epoch():
    """Steps cycle through reshuffled epochs, so 3 steps of 4 over 6 prompts use each prompt twice."""
    used = [i for step in (1, 2, 3) for i in step_prompt_indices(step=step, batch_size=4, n_rows=6, seed=0)]
    assert sorted(used) == sorted(list(range(6)) * 2)
    assert step_prompt_indices(step=2, batch_size=4, n_rows=6, seed=0) == step_prompt_indices(
        step=2, batch_size=4, n_rows=6, seed=0
    )


def test_config_needs_exactly_one_reward_source(tiny_reward_dir, tmp_path):
    """No reward source, both, a folder that does not exist, or a module that does not exist are refused."""
    with pytest.raises(ValueError, match="exactly one"):
        PPOConfig()
    with pytest.raises(ValueError, match="exactly one"):
        PPOConfig(reward_model=str(tiny_reward_dir), reward_function="tests.training.scorers:word_count")
    with pytest.raises(ValueError, match="does not exist"):
        PPOConfig(reward_model=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="cannot be found"):
        PPOConfig(reward_function="no_such_package.scores:score")
    with pytest.raises(ValueError, match="mini_batch_size"):
        PPOConfig(reward_model=str(tiny_reward_dir), mini_batch_size=8, per_device_train_batch_size=4)


# ------------------------------------------------------------------------------------------------ training


def test_ppo_trains_the_tiny_lm_with_a_reward_model(
    tiny_lm_dir, tiny_reward_dir, text_preference_file, tmp_path, recording_hooks
):
    """Three PPO steps with the tiny reward model report finite losses, scores, KL and throughput every step,
    and save a policy whose weights moved."""
    hooks = recording_hooks()
    result = train_ppo(
        config=PPOConfig(max_steps=3, reward_model=str(tiny_reward_dir), learning_rate=1e-3),
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "ppo",
        hooks=hooks,
    )
    assert result.steps == 3 and not result.stopped_early
    assert [step for step, _, _ in hooks.steps] == [1, 2, 3]
    for _, max_steps, metrics in hooks.steps:
        assert max_steps == 3
        assert {"loss", "objective/scores", "kl", "kl_coef", "learning_rate", "tokens_per_second"} <= metrics.keys()
        assert all(math.isfinite(v) for v in metrics.values())
    assert hooks.steps[0][2]["kl"] == pytest.approx(0.0, abs=1e-5)  # the first rollout is sampled from the reference
    assert read_model_info(result.output_dir)["kind"] == "policy"
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    trained = AutoModelForCausalLM.from_pretrained(result.output_dir)
    assert not torch.equal(base.lm_head.weight, trained.lm_head.weight)


def test_ppo_trains_the_tiny_vlm_and_the_scorer_sees_the_images(tiny_vlm_dir, image_preference_file, tmp_path):
    """With a VLM the scorer is called with each answer's image, and the vision tower learns too."""
    from transformers import AutoModelForImageTextToText

    scorers.CALLS.clear()
    result = train_ppo(
        config=PPOConfig(max_steps=2, reward_function="tests.training.scorers:recording", learning_rate=1e-3),
        train_path=image_preference_file,
        base_model=str(tiny_vlm_dir),
        output_dir=tmp_path / "vppo",
    )
    assert result.steps == 2
    assert len(scorers.CALLS) == 2
    for call in scorers.CALLS:
        assert len(call["images"]) == len(call["completions"]) == 4
        assert all(len(images) == 1 and images[0].size == (96, 96) for images in call["images"])
    base = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    after = dict(AutoModelForImageTextToText.from_pretrained(result.output_dir).named_parameters())
    assert any(not torch.equal(p, after[n]) for n, p in base.named_parameters() if "vision_tower" in n)


def expected_word_reward(model_dir: Path, prompts: list[str]) -> float:
    """The mean ``word_count`` reward of 8 answers per prompt sampled from the model at ``model_dir`` with a
    fixed seed: an estimate of the policy's expected reward, with far less noise than one step's batch."""
    model, processing_class = load_policy(model_dir)
    torch.manual_seed(0)
    answers = [
        a for group in sample_answers(model, processing_class, prompts=prompts, n=8, max_new_tokens=8) for a in group
    ]
    return sum(scorers.word_count(prompts, answers)) / len(answers)


def test_ppo_raises_the_reward_and_the_kl_controller_reacts(tiny_lm_dir, text_preference_file, tmp_path):
    """Rewarded for words, the saved policy's expected reward (sampled from it, not read off the run's own
    batches) rises clearly above the base model's within 16 steps: it is the policy gradient that does it (with
    the policy loss zeroed the value loss alone leaves it within 0.02). Its KL to the reference exceeds a small
    target, so the adaptive controller raises the KL coefficient."""
    config = PPOConfig(
        max_steps=16,
        per_device_train_batch_size=8,
        mini_batch_size=4,
        max_completion_length=8,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        reward_function="tests.training.scorers:word_count",
        init_kl_coef=0.05,
        target_kl=0.5,
        kl_horizon=50,
        save_steps=100,
    )
    result = train_ppo(
        config=config, train_path=text_preference_file, base_model=str(tiny_lm_dir), output_dir=tmp_path / "p"
    )
    prompts = [row["prompt"] for row in prompt_rows(text_preference_file)]
    assert expected_word_reward(result.output_dir, prompts) > expected_word_reward(tiny_lm_dir, prompts) + 0.08
    assert result.history[-1]["kl"] > config.target_kl
    assert result.history[-1]["kl_coef"] > config.init_kl_coef


def test_ppo_stops_on_request_and_resumes_to_the_same_weights(
    tiny_lm_dir, tiny_reward_dir, text_preference_file, tmp_path, recording_hooks
):
    """Stopped after step 2, PPO leaves a checkpoint and no model; resumed, it runs steps 3-4 only and ends
    with the weights of a run that was never stopped. A checkpoint-3 a kill left half written (everything but its
    state file, written last) is removed and passed over."""
    config = PPOConfig(max_steps=4, reward_model=str(tiny_reward_dir), learning_rate=1e-3, save_steps=100)
    out = tmp_path / "stopped"
    stopped = train_ppo(
        config=config,
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=out,
        hooks=recording_hooks(stop_at_step=2),
    )
    assert stopped.stopped_early and stopped.steps == 2
    assert (out / "checkpoints" / "checkpoint-2").is_dir() and not (out / "model.safetensors").exists()
    half = shutil.copytree(out / "checkpoints" / "checkpoint-2", out / "checkpoints" / "checkpoint-3")
    (half / "ppo_state.json").unlink()
    resuming = recording_hooks()
    resumed = train_ppo(
        config=config,
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=out,
        hooks=resuming,
        resume=True,
    )
    assert resumed.steps == 4 and [step for step, _, _ in resuming.steps] == [3, 4]
    assert "removed checkpoint-3: the run stopped while saving it" in resuming.lines
    straight = train_ppo(
        config=config, train_path=text_preference_file, base_model=str(tiny_lm_dir), output_dir=tmp_path / "straight"
    )
    a = AutoModelForCausalLM.from_pretrained(resumed.output_dir)
    b = AutoModelForCausalLM.from_pretrained(straight.output_dir)
    for (name, x), y in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6, msg=name)


# ------------------------------------------------------------------------------------ as real models need it


def test_log_probs_are_those_of_the_sampling_temperature(tiny_lm_dir, text_preference_file, tmp_path):
    """Sampled at temperature 0.5, a rollout's log-probs are log_softmax(logits / 0.5) of the sampled tokens,
    and the reference's are taken alike: at the first step (policy = reference) the KL to it is 0."""
    config = PPOConfig(max_steps=1, reward_function="tests.training.scorers:word_count", temperature=0.5)
    run = _PPORun(
        config=config,
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path,
        hooks=NullHooks(),
    )
    rollout, stats, _ = run.rollout()
    with torch.no_grad():
        logits = run._unwrapped().policy(**rollout.inputs).logits
    start = rollout.prompt_length
    answer_ids = rollout.inputs["input_ids"][:, start:]  # (B, C)
    expected = torch.log_softmax(logits[:, start - 1 : -1] / 0.5, dim=-1).gather(-1, answer_ids.unsqueeze(-1))
    mask = rollout.mask.bool()
    torch.testing.assert_close(rollout.old_logps[mask], expected.squeeze(-1)[mask], rtol=1e-5, atol=1e-5)
    assert stats["objective/kl"] == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("use_lora", [False, True], ids=["full", "lora"])
def test_each_update_starts_at_ratio_one_on_a_model_with_dropout(use_lora, real_lm_dir, text_preference_file, tmp_path):
    """On a checkpoint with attention dropout (and LoRA dropout), each PPO step's first minibatch has the ratio
    pi/pi_old exactly 1: dropout is off, so the train-mode update sees the eval-mode rollout's policy (no
    approximate KL, nothing clipped). At step 2 LoRA's B is no longer 0, so its dropout would show. (That the
    bf16 checkpoint trains in fp32 and keeps EOS as pad: tests/core/test_real_traits.py.)"""
    config = PPOConfig(
        max_steps=2,
        per_device_train_batch_size=4,
        mini_batch_size=4,  # one minibatch, one epoch: each step's stats are its first minibatch's
        ppo_epochs=1,
        learning_rate=1e-3,
        temperature=0.7,
        reward_function="tests.training.scorers:word_count",
        use_lora=use_lora,
        lora_dropout=0.1,
        lora_target_modules=["q_proj", "v_proj"],
    )
    result = train_ppo(
        config=config, train_path=text_preference_file, base_model=str(real_lm_dir), output_dir=tmp_path / "ppo"
    )
    assert len(result.history) == 2
    for step in result.history:
        assert step["policy/approxkl"] < 1e-10 and step["policy/clipfrac"] == 0.0


def test_ppo_trains_a_realistic_vlm_on_images(real_vlm_dir, image_preference_file, tmp_path):
    """A LLaVA-like checkpoint saved in bf16, without a pad token and with 576 image tokens per image trains
    with its images through sampling and updates, ratio 1 at its first minibatch."""
    config = PPOConfig(
        max_steps=1,
        per_device_train_batch_size=2,
        mini_batch_size=2,
        ppo_epochs=1,
        max_completion_length=4,
        reward_function="tests.training.scorers:recording",
    )
    result = train_ppo(
        config=config, train_path=image_preference_file, base_model=str(real_vlm_dir), output_dir=tmp_path / "v"
    )
    assert result.steps == 1 and result.history[0]["policy/approxkl"] < 1e-10


TWO_PROCESS_PPO = """
import json, sys
from pathlib import Path
from accelerate import PartialState
from training.methods.ppo import PPOConfig, train_ppo
args = json.loads(sys.argv[1])
result = train_ppo(
    config=PPOConfig(**args["config"]),
    train_path=Path(args["train"]),
    base_model=args["base"],
    output_dir=Path(args["out"]),
)
state = PartialState()  # as the run's Accelerator set it up
if state.is_main_process:
    Path(args["report"]).write_text(json.dumps({"processes": state.num_processes, "history": result.history}))
state.destroy_process_group()  # as training.launch ends every process
"""


def test_under_two_processes_the_schedule_steps_once_per_optimizer_step(
    tiny_lm_dir, text_preference_file, tmp_path, run_on_two_processes
):
    """On two processes a linear schedule over 4 optimizer steps gives 3/4, 1/2, 1/4 and 0 of the peak rate after
    steps 1-4, as on one process (accelerate's prepared scheduler would step twice per step: 1/2, 0, 0, 0)."""
    config = {
        "max_steps": 4,
        "per_device_train_batch_size": 2,
        "mini_batch_size": 2,
        "ppo_epochs": 1,
        "max_completion_length": 4,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "linear",
        "reward_function": "tests.training.scorers:word_count",
        "save_steps": 100,
    }
    report = tmp_path / "report.json"
    args = {"config": config, "train": str(text_preference_file), "base": str(tiny_lm_dir), "out": str(tmp_path / "o")}
    run_on_two_processes(TWO_PROCESS_PPO, {**args, "report": str(report)})
    outcome = json.loads(report.read_text())
    assert outcome["processes"] == 2
    rates = [h["learning_rate"] for h in outcome["history"]]
    assert rates == pytest.approx([7.5e-4, 5e-4, 2.5e-4, 0.0])
