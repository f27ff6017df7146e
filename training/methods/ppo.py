"""PPO with a reward model (or any scorer) and a KL penalty to the reference model: Loupe's own, small and explicit.

trl dropped its PPO trainer in 1.12, so this module writes the algorithm out (Schulman et al., 2017,
"Proximal Policy Optimization Algorithms"; as applied to language models by Ziegler et al., 2019,
"Fine-Tuning Language Models from Human Preferences", and trl's former ``PPOTrainer``). One PPO step:

1. Rollout: sample one answer per prompt of a batch from the current policy.
2. Score each answer with the reward source (``training.rewards``): a reward model or a function such as
   the AI labeler's score.
3. Per-token rewards: ``-kl_coef * (log pi - log ref)`` at every answer token (the KL penalty that keeps
   the policy near the reference), plus the score at the answer's last token.
4. Advantages by GAE (generalised advantage estimation, Schulman et al., 2016) from the value head's
   estimates; returns = advantages + values.
5. ``ppo_epochs`` passes over the answers in minibatches, minimising the clipped policy objective
   ``max(-A * r, -A * clip(r, 1 - eps, 1 + eps))`` with ``r = pi / pi_old`` plus ``vf_coef`` times the
   clipped value loss.
6. Adaptive KL control (Ziegler et al.): ``kl_coef *= 1 + clip(KL / target_kl - 1, -0.2, 0.2) * n / horizon``
   moves the penalty so the answers' KL to the reference drifts towards ``target_kl``.

The value head is a linear layer on the policy's last hidden state (a shared backbone, as trl's
``AutoModelForCausalLMWithValueHead`` had it). The reference is a frozen copy of the base model, or with LoRA
the base with its adapters switched off. Text and vision-language models alike: a VLM's image inputs go with
its prompts through sampling and every forward pass. ``accelerate`` places the model, so more GPUs are a
matter of launching with ``accelerate launch``. Checkpoints (policy, value head, optimizer, scheduler, KL
coefficient) let a stopped or crashed run resume where it was.

As trl's ``PPOTrainer`` did: weights are fp32 masters (bf16 autocast on a CUDA GPU), every dropout is off (so
the policy that optimises is the one that sampled: the ratio starts at exactly 1), and log-probabilities are
those of the sampling distribution, ``log_softmax(logits / temperature)``, for the rollout, the update and the
reference alike.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import get_scheduler

from training.checkpoints import (
    DISCARDED_LINE,
    PPO_STATE_FILE,
    discard_incomplete_checkpoints,
    last_complete_checkpoint,
    numbered_checkpoints,
)
from training.core import (
    CHECKPOINTS_DIR,
    TRAINING_DTYPE,
    NullHooks,
    RunHooks,
    TrainResult,
    agree_to_stop,
    cuda_bf16,
    ensure_pad_token,
    gather_token_logps,
    has_chat_template,
    is_vision_model,
    load_processing_class,
    load_prompt_dataset,
    row_images,
    tokenizer_of,
    write_model_info,
)
from training.generation import PromptBatch, answer_prefix_of, decode_answers, encode_prompts, generate, load_generator
from training.methods.configs import PPOConfig
from training.rewards import load_reward_scorer

__all__ = [
    "AdaptiveKLController",
    "PPOConfig",
    "PolicyWithValueHead",
    "answer_logps",
    "clipped_policy_loss",
    "clipped_value_loss",
    "disable_dropout",
    "gae_advantages",
    "kl_penalised_rewards",
    "masked_mean",
    "masked_whiten",
    "prompt_rows",
    "train_ppo",
]

VALUE_HEAD_FILE = "value_head.safetensors"


# --------------------------------------------------------------------------------------------------------------
# The numerics (pure functions of tensors, tested one by one)


def answer_logps(
    logits: torch.Tensor, input_ids: torch.Tensor, *, prompt_length: int, temperature: float
) -> torch.Tensor:
    """Log-probs of the answer tokens under the distribution they were sampled from, ``softmax(logits / T)``.

    logits: (B, L, V); input_ids: (B, L), the answer starting at ``prompt_length``. Returns (B, C), C = L -
    prompt_length: entry t scores answer token t. Without the temperature the ratio pi/pi_old and the KL
    to the reference would be those of another policy than the one that sampled."""
    labels = input_ids.clone()
    labels[:, :prompt_length] = -100
    return gather_token_logps(logits.float() / temperature, labels)[:, prompt_length - 1 :]  # fp32 even under bf16


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is 1 (same shapes)."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True) -> torch.Tensor:
    """``values`` normalised to zero mean and unit variance over the masked entries."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    whitened = (values - mean) * torch.rsqrt(variance + 1e-8)
    return whitened if shift_mean else whitened + mean


def kl_penalised_rewards(
    *, scores: torch.Tensor, logps: torch.Tensor, ref_logps: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: ``-kl_coef * (logps - ref_logps)`` on every answer token, plus the sequence score at
    its last token. scores: (B,); logps, ref_logps, mask: (B, C). Returns ``(rewards, kl)``, both (B, C)."""
    kl = (logps - ref_logps) * mask  # (B, C): the per-token KL estimate log pi/ref of the sampled token
    rewards = -kl_coef * kl
    last = (torch.arange(mask.size(1), device=mask.device) * mask).argmax(dim=-1)  # (B,) last answer token
    rewards[torch.arange(mask.size(0), device=mask.device), last] += scores
    return rewards * mask, kl


def gae_advantages(
    *, rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns over answer tokens. All inputs (B, C); positions past an
    answer's end (mask 0) have zero value and reward, so the last token bootstraps from 0."""
    values = values * mask
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(rewards[:, 0])
    length = rewards.size(1)
    for t in reversed(range(length)):
        next_values = values[:, t + 1] if t + 1 < length else torch.zeros_like(values[:, t])
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        last_gae = delta + gamma * lam * last_gae
        advantages[:, t] = last_gae
    advantages = advantages * mask
    return advantages, advantages + values


def clipped_policy_loss(
    *, logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, cliprange: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate objective (to minimise), over answer tokens; also the clip fraction and the
    approximate KL between the new and the rollout policy."""
    ratio = torch.exp(logps - old_logps)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    stats = {
        "policy/clipfrac": masked_mean((clipped > unclipped).float(), mask),
        "policy/approxkl": 0.5 * masked_mean((logps - old_logps) ** 2, mask),
    }
    return loss, stats


def clipped_value_loss(
    *, values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, cliprange_value: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The value head's clipped squared error (to minimise) and the fraction of tokens where clipping bit."""
    clipped_values = torch.clamp(values, old_values - cliprange_value, old_values + cliprange_value)
    losses = (values - returns) ** 2
    clipped_losses = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(losses, clipped_losses), mask)
    return loss, masked_mean((clipped_losses > losses).float(), mask)


class AdaptiveKLController:
    """Ziegler et al.'s proportional controller of the KL coefficient, steering the KL towards ``target``."""

    def __init__(self, *, init_kl_coef: float, target: float | None, horizon: int) -> None:
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        """After a step whose answers had mean KL ``current_kl`` (nats), over ``n_steps`` answers."""
        if self.target is None:  # fixed coefficient
            return
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon


# --------------------------------------------------------------------------------------------------------------
# The model


def disable_dropout(model: nn.Module) -> None:
    """Switch off every dropout in ``model``: ``nn.Dropout`` layers (LoRA's among them) and the rates that
    attention layers keep as plain floats (Llama's ``attention_dropout``, CLIP's ``dropout``).

    PPO samples in eval mode and optimises in train mode (gradient checkpointing only runs in train mode);
    with dropout on, the first minibatch's ratio pi/pi_old would already differ from 1 and clip on noise.
    trl's PPO switched dropout off the same way. The saved config keeps its rates."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        for name, value in list(vars(module).items()):
            if "dropout" in name and isinstance(value, float):
                setattr(module, name, 0.0)


class PolicyWithValueHead(nn.Module):
    """A causal LM or VLM with a scalar value head on its last hidden state.

    ``forward`` returns the policy's logits (B, L, V) and the value estimate at every position (B, L).
    """

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy
        hidden_size = policy.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)  # values start at 0: early advantages are the rewards themselves
        nn.init.zeros_(self.value_head.bias)

    def forward(self, **inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.policy(**inputs, output_hidden_states=True, use_cache=False)
        hidden = outputs.hidden_states[-1]
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)
        return outputs.logits, values


# --------------------------------------------------------------------------------------------------------------
# Data


def prompt_rows(path: Path) -> list[dict[str, Any]]:
    """The distinct (prompt, images) of a training file (preference or prompt/completion rows), in file
    order: what online methods write answers for."""
    rows, seen = [], set()
    for row in load_prompt_dataset(path):
        images = row_images(row)
        key = (
            json.dumps(row["prompt"], sort_keys=True),
            tuple(hashlib.sha256(image.tobytes()).hexdigest() for image in images),
        )
        if key not in seen:
            seen.add(key)
            rows.append({"prompt": row["prompt"], "images": images})
    return rows


def step_prompt_indices(*, step: int, batch_size: int, n_rows: int, seed: int) -> list[int]:
    """Which rows step ``step`` (1-based) samples: consecutive slices of a reshuffled-every-epoch order, so
    the choice depends on the step alone and a resumed run continues the same sequence."""
    indices = []
    for position in range((step - 1) * batch_size, step * batch_size):
        epoch, offset = divmod(position, n_rows)
        order = list(range(n_rows))
        random.Random(seed * 100_003 + epoch).shuffle(order)
        indices.append(order[offset])
    return indices


# --------------------------------------------------------------------------------------------------------------
# The loop


@dataclass
class _Rollout:
    inputs: dict[str, torch.Tensor]  # full sequences: input_ids, attention_mask, position_ids, image inputs
    prompt_length: int
    mask: torch.Tensor  # (B, C) answer tokens
    old_logps: torch.Tensor  # (B, C)
    old_values: torch.Tensor  # (B, C)
    advantages: torch.Tensor  # (B, C)
    returns: torch.Tensor  # (B, C)


def _full_inputs(batch: PromptBatch, completion_ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Model inputs for prompt + answer: the attention mask covers the answer up to its EOS; positions
    count real tokens only, as generation counted them under left padding."""
    device = completion_ids.device
    prompt_ids = batch.inputs["input_ids"].to(device)
    attention_mask = torch.cat([batch.inputs["attention_mask"].to(device), mask], dim=1)
    inputs = {k: v.to(device) for k, v in batch.inputs.items() if k not in ("input_ids", "attention_mask")}
    inputs["input_ids"] = torch.cat([prompt_ids, completion_ids], dim=1)
    inputs["attention_mask"] = attention_mask
    inputs["position_ids"] = (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)
    return inputs


def _slice(inputs: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    # Every input is per-row here (one image per row for the VLMs Loupe trains), so rows slice alike.
    return {k: v[index] for k, v in inputs.items()}


def _answer_logps_and_values(
    model: nn.Module, inputs: dict[str, torch.Tensor], prompt_length: int, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of the answer tokens (at the sampling temperature) and the values of the states before
    them, both (B, C)."""
    logits, values = model(**inputs)
    logps = answer_logps(logits, inputs["input_ids"], prompt_length=prompt_length, temperature=temperature)
    return logps, values[:, prompt_length - 1 : -1]


class _PPORun:
    """One PPO run's state: models, optimizer, controller, data and checkpoints."""

    def __init__(
        self, *, config: PPOConfig, train_path: Path, base_model: str, output_dir: Path, hooks: RunHooks
    ) -> None:
        self.config, self.base_model, self.output_dir, self.hooks = config, str(base_model), Path(output_dir), hooks
        self.checkpoints_dir = self.output_dir / CHECKPOINTS_DIR
        # Mixed precision keeps the fp32 master weights and runs the forward passes in bf16, on CUDA only.
        self.accelerator = Accelerator(mixed_precision="bf16" if cuda_bf16() else "no")
        self.processing_class = load_processing_class(base_model)
        self.tokenizer = tokenizer_of(self.processing_class)
        self.rows = prompt_rows(train_path)
        with_images = any(row["images"] for row in self.rows)
        if with_images and not is_vision_model(base_model):
            self.rows = [{**row, "images": []} for row in self.rows]  # a text model reads the prompt alone
        self.use_template = has_chat_template(self.processing_class) and (
            config.apply_chat_template or (with_images and is_vision_model(base_model))
        )
        prefix = config.answer_prefix if config.answer_prefix is not None else answer_prefix_of(base_model)
        self.answer_prefix = prefix
        self.scorer = load_reward_scorer(
            reward_model=config.reward_model, reward_function=config.reward_function, device=self.accelerator.device
        )
        self.kl_controller = AdaptiveKLController(
            init_kl_coef=config.init_kl_coef,
            target=config.target_kl if config.adaptive_kl else None,
            horizon=config.kl_horizon,
        )
        self.step = 0
        self._build_models()

    # -- models, optimizer and checkpoints

    def _build_models(self) -> None:
        config = self.config
        torch.manual_seed(config.seed)
        self.discarded_checkpoints = (
            discard_incomplete_checkpoints(self.checkpoints_dir) if self.accelerator.is_main_process else []
        )
        self.resume_checkpoint = last_complete_checkpoint(self.checkpoints_dir)
        policy = load_generator(self.base_model, dtype=TRAINING_DTYPE)
        if config.use_lora:
            from peft import PeftModel, get_peft_model

            if self.resume_checkpoint is not None:
                policy = PeftModel.from_pretrained(policy, str(self.resume_checkpoint / "policy"), is_trainable=True)
            else:
                policy = get_peft_model(policy, config.lora_config())
            self.reference = None  # the base with adapters off
        else:
            if self.resume_checkpoint is not None:
                policy = load_generator(self.resume_checkpoint / "policy", dtype=TRAINING_DTYPE)
            self.reference = load_generator(self.base_model, dtype=TRAINING_DTYPE)
            self.reference.requires_grad_(False)
            self.reference.eval()
        ensure_pad_token(self.processing_class, *(m for m in (policy, self.reference) if m is not None))
        model = PolicyWithValueHead(policy)
        disable_dropout(model)
        if self.resume_checkpoint is not None:
            model.value_head.load_state_dict(load_file(str(self.resume_checkpoint / VALUE_HEAD_FILE)))
        if config.gradient_checkpointing and torch.cuda.is_available():
            policy.gradient_checkpointing_enable()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
        n_minibatches = math.ceil(config.per_device_train_batch_size / config.mini_batch_size)
        scheduler = get_scheduler(
            config.lr_scheduler_type,
            optimizer=optimizer,
            num_warmup_steps=config.warmup_steps * config.ppo_epochs * n_minibatches,
            num_training_steps=config.max_steps * config.ppo_epochs * n_minibatches,
        )
        if self.resume_checkpoint is not None:
            optimizer.load_state_dict(torch.load(self.resume_checkpoint / "optimizer.pt", weights_only=True))
            scheduler.load_state_dict(torch.load(self.resume_checkpoint / "scheduler.pt", weights_only=True))
            state = json.loads((self.resume_checkpoint / PPO_STATE_FILE).read_text())
            self.step = state["step"]
            self.kl_controller.value = state["kl_coef"]
        # The scheduler is not handed to accelerate: its prepared scheduler steps num_processes times per call
        # (it assumes each process's batch was split from a num_processes times larger one), so under N
        # processes the schedule would run N times too fast. Here every process steps its optimizer alike.
        self.scheduler = scheduler
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        if self.reference is not None:
            self.reference.to(self.accelerator.device)

    def _unwrapped(self) -> PolicyWithValueHead:
        return self.accelerator.unwrap_model(self.model)

    def save_checkpoint(self) -> Path:
        path = self.checkpoints_dir / f"checkpoint-{self.step}"
        path.mkdir(parents=True, exist_ok=True)
        model = self._unwrapped()
        model.policy.save_pretrained(path / "policy")
        save_file({k: v.contiguous() for k, v in model.value_head.state_dict().items()}, str(path / VALUE_HEAD_FILE))
        torch.save(self.optimizer.state_dict(), path / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), path / "scheduler.pt")
        (path / PPO_STATE_FILE).write_text(json.dumps({"step": self.step, "kl_coef": self.kl_controller.value}))
        if self.config.save_total_limit is not None:
            older = [p for p in numbered_checkpoints(self.checkpoints_dir) if p != path]  # newest first
            for stale in older[max(0, self.config.save_total_limit - 1) :]:
                shutil.rmtree(stale, ignore_errors=True)
        return path

    def save_final(self) -> None:
        policy = self._unwrapped().policy
        is_adapter = hasattr(policy, "merge_and_unload") and not self.config.merge_lora
        if hasattr(policy, "merge_and_unload") and self.config.merge_lora:
            policy = policy.merge_and_unload()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        policy.save_pretrained(self.output_dir)
        self.processing_class.save_pretrained(self.output_dir)
        write_model_info(
            self.output_dir, {"kind": "policy", "answer_prefix": self.answer_prefix, "is_adapter": is_adapter}
        )

    # -- one step

    def _reference_logps(self, inputs: dict[str, torch.Tensor], prompt_length: int) -> torch.Tensor:
        if self.reference is not None:
            logits = self.reference(**inputs, use_cache=False).logits
        else:
            with self._unwrapped().policy.disable_adapter():
                logits = self._unwrapped().policy(**inputs, use_cache=False).logits
        return answer_logps(
            logits, inputs["input_ids"], prompt_length=prompt_length, temperature=self.config.temperature
        )

    @torch.no_grad()
    def rollout(self) -> tuple[_Rollout, dict[str, float], int]:
        with self.accelerator.autocast():  # bf16 on CUDA like the prepared model's passes; nothing on CPU
            return self._rollout()

    def _rollout(self) -> tuple[_Rollout, dict[str, float], int]:
        config = self.config
        # Each process takes its own slice of the step's prompts (one process: the step's prompts).
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        indices = step_prompt_indices(
            step=self.step * world + rank + 1,
            batch_size=config.per_device_train_batch_size,
            n_rows=len(self.rows),
            seed=config.seed,
        )
        rows = [self.rows[i] for i in indices]
        images = [row["images"] for row in rows] if any(row["images"] for row in rows) else None
        batch = encode_prompts(
            self.processing_class,
            prompts=[row["prompt"] for row in rows],
            images=images,
            use_template=self.use_template,
            answer_prefix=self.answer_prefix,
        )
        # The step's samples do not depend on a resume, and differ between processes.
        torch.manual_seed(config.seed * 1_000_003 + self.step * world + rank)
        model = self._unwrapped()
        model.eval()
        completion_ids, mask = generate(
            model.policy,
            self.processing_class,
            batch,
            max_new_tokens=config.max_completion_length,
            temperature=config.temperature,
        )
        answers = decode_answers(self.processing_class, completion_ids, mask)
        prompts = [row["prompt"] for row in rows]
        scores = torch.tensor(self.scorer(prompts=prompts, completions=answers, images=images), dtype=torch.float32).to(
            completion_ids.device
        )
        inputs = _full_inputs(batch, completion_ids, mask)
        logps, values = _answer_logps_and_values(self.model, inputs, batch.prompt_length, config.temperature)
        ref_logps = self._reference_logps(inputs, batch.prompt_length)
        mask_f = mask.float()
        rewards, kl = kl_penalised_rewards(
            scores=scores, logps=logps, ref_logps=ref_logps, mask=mask_f, kl_coef=self.kl_controller.value
        )
        advantages, returns = gae_advantages(
            rewards=rewards, values=values, mask=mask_f, gamma=config.gamma, lam=config.lam
        )
        if config.whiten_advantages:
            advantages = masked_whiten(advantages, mask_f) * mask_f
        sequence_kl = kl.sum(dim=-1)  # (B,)
        stats = {
            "objective/scores": scores.mean().item(),
            "objective/kl": sequence_kl.mean().item(),
            "objective/rlhf_reward": (scores - self.kl_controller.value * sequence_kl).mean().item(),
            "kl_coef": self.kl_controller.value,
            "response_length": mask_f.sum(dim=-1).mean().item(),
        }
        rollout = _Rollout(
            inputs=inputs,
            prompt_length=batch.prompt_length,
            mask=mask_f,
            old_logps=logps,
            old_values=values * mask_f,
            advantages=advantages,
            returns=returns,
        )
        return rollout, stats, int(inputs["attention_mask"].sum().item())

    def optimise(self, rollout: _Rollout) -> dict[str, float]:
        config = self.config
        model = self.model
        model.train()
        sums: dict[str, float] = {}
        count = 0
        size = rollout.mask.size(0)
        generator = torch.Generator().manual_seed(config.seed * 7919 + self.step)
        for _ in range(config.ppo_epochs):
            order = torch.randperm(size, generator=generator)
            for start in range(0, size, config.mini_batch_size):
                index = order[start : start + config.mini_batch_size].to(rollout.mask.device)
                mask = rollout.mask[index]
                logps, values = _answer_logps_and_values(
                    model, _slice(rollout.inputs, index), rollout.prompt_length, config.temperature
                )
                policy_loss, policy_stats = clipped_policy_loss(
                    logps=logps,
                    old_logps=rollout.old_logps[index],
                    advantages=rollout.advantages[index],
                    mask=mask,
                    cliprange=config.cliprange,
                )
                value_loss, value_clipfrac = clipped_value_loss(
                    values=values,
                    old_values=rollout.old_values[index],
                    returns=rollout.returns[index],
                    mask=mask,
                    cliprange_value=config.cliprange_value,
                )
                loss = policy_loss + config.vf_coef * value_loss
                self.accelerator.backward(loss)
                grad_norm = self.accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad()
                for name, value in {
                    "loss": loss,
                    "loss/policy": policy_loss,
                    "loss/value": value_loss,
                    "val/clipfrac": value_clipfrac,
                    "grad_norm": grad_norm,
                    **policy_stats,
                }.items():
                    sums[name] = sums.get(name, 0.0) + float(torch.as_tensor(value).detach())
                count += 1
        return {name: total / count for name, total in sums.items()}

    def train(self) -> TrainResult:
        config, hooks = self.config, self.hooks
        history: list[dict[str, float]] = []
        stopped_early = False
        for name in self.discarded_checkpoints:
            hooks.on_log_line(DISCARDED_LINE.format(name))
        if self.resume_checkpoint is not None:
            hooks.on_log_line(f"resuming from {self.resume_checkpoint}")
        hooks.on_log_line(f"training starts at step {self.step} of {config.max_steps}")
        while self.step < config.max_steps:
            started = time.perf_counter()
            rollout, stats, n_tokens = self.rollout()
            metrics = {**stats, **self.optimise(rollout)}
            self.kl_controller.update(stats["objective/kl"], config.per_device_train_batch_size)
            self.step += 1
            elapsed = time.perf_counter() - started
            metrics["learning_rate"] = self.scheduler.get_last_lr()[0]
            metrics["kl"] = metrics["objective/kl"]
            metrics["tokens_per_second"] = n_tokens * (1 + config.ppo_epochs) / elapsed if elapsed > 0 else 0.0
            device = self.accelerator.device
            metrics = {
                k: float(self.accelerator.reduce(torch.tensor(v, device=device), reduction="mean"))
                for k, v in metrics.items()
            }
            history.append({"step": float(self.step), **metrics})
            if (
                self.step % config.logging_steps == 0 or self.step == config.max_steps
            ) and self.accelerator.is_main_process:
                hooks.on_step(self.step, config.max_steps, metrics)
                shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
                hooks.on_log_line(f"step {self.step}/{config.max_steps}: {shown}")
            stop = (
                agree_to_stop(self.accelerator.is_main_process and hooks.should_stop()) and self.step < config.max_steps
            )
            if (self.step % config.save_steps == 0 or stop) and self.accelerator.is_main_process:
                self.save_checkpoint()
            self.accelerator.wait_for_everyone()
            if stop:
                stopped_early = True
                hooks.on_log_line(f"stop requested: checkpoint at step {self.step}, then stopping")
                break
        if not stopped_early and self.accelerator.is_main_process:
            self.save_final()
            hooks.on_log_line(f"saved the model after {self.step} steps to {self.output_dir}")
        return TrainResult(
            output_dir=self.output_dir,
            steps=self.step,
            metrics=history[-1] if history else {},
            stopped_early=stopped_early,
            history=history,
        )


def train_ppo(
    *,
    config: PPOConfig,
    train_path: Path,
    base_model: str,
    output_dir: Path,
    eval_path: Path | None = None,
    hooks: RunHooks | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``base_model`` with PPO on the prompts of ``train_path`` (a preference file; its answers are
    not used), rewarded by ``config.reward_model`` or ``config.reward_function``.

    Arguments as for ``train_dpo``; ``eval_path`` is not used. Per-step metrics: ``loss``, ``loss/policy``,
    ``loss/value``, ``objective/scores`` (mean reward), ``objective/kl`` and ``kl`` (mean KL to the reference
    per answer, nats), ``objective/rlhf_reward`` (score minus the KL penalty), ``kl_coef``,
    ``policy/clipfrac``, ``policy/approxkl``, ``val/clipfrac``, ``response_length``, ``learning_rate``,
    ``grad_norm`` and ``tokens_per_second``.
    """
    output_dir = Path(output_dir)
    if not resume and (output_dir / CHECKPOINTS_DIR).is_dir():
        shutil.rmtree(output_dir / CHECKPOINTS_DIR)  # a fresh run starts from the base, not an old checkpoint
    run = _PPORun(
        config=config, train_path=train_path, base_model=base_model, output_dir=output_dir, hooks=hooks or NullHooks()
    )
    return run.train()
