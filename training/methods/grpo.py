"""GRPO and RLOO (trl's trainers) rewarded by a reward model or a scorer, on a snapshot's prompts.

Both sample ``num_generations`` answers per prompt and push up the ones that score above their group:
GRPO (Shao et al., 2024, "DeepSeekMath") normalises each reward by its group's mean and standard
deviation; RLOO (Ahmadian et al., 2024, "Back to Basics: Revisiting REINFORCE Style Optimization for
Learning from Human Feedback in LLMs") subtracts the mean of the other answers of the same prompt. Both add
a KL penalty to the reference model weighted by ``beta``. The reward is Loupe's scorer (``training.rewards``:
a reward model of either kind, or a ``module:function`` such as the AI labeler's score) wrapped as a trl
reward function, so text and vision reward models work alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from training.core import (
    RunHooks,
    TrainResult,
    conversation,
    has_chat_template,
    is_vision_model,
    load_processing_class,
    run_trainer,
)
from training.methods.configs import GRPOConfig, RLOOConfig
from training.methods.ppo import prompt_rows
from training.rewards import load_reward_scorer, trl_reward_function

__all__ = ["GRPOConfig", "RLOOConfig", "prompt_dataset", "train_grpo", "train_rloo"]


def prompt_dataset(*, path: Path, base_model: str, processing_class: Any) -> datasets.Dataset:
    """The distinct prompts of a preference file as trl's conversational prompt rows (with an ``images``
    column for a vision-language model; a text model reads the prompt alone)."""
    if not has_chat_template(processing_class):
        raise ValueError(f"{base_model}: GRPO and RLOO render prompts as chats; the model has no chat template")
    vision = is_vision_model(base_model)
    rows = []
    for row in prompt_rows(path):
        with_image = vision and bool(row["images"])
        prompt = conversation(row["prompt"], with_image=False)
        rows.append({"prompt": prompt, **({"images": row["images"]} if with_image else {})})
    dataset = datasets.Dataset.from_list(rows)
    if "images" in dataset.column_names:
        dataset = dataset.cast_column("images", datasets.List(datasets.Image()))
    return dataset


def _train_online(
    *,
    trainer_class: type,
    config: GRPOConfig,
    train_path: Path,
    base_model: str,
    output_dir: Path,
    hooks: RunHooks | None,
    resume: bool,
) -> TrainResult:
    processing_class = load_processing_class(base_model)
    train_dataset = prompt_dataset(path=train_path, base_model=base_model, processing_class=processing_class)
    args = config.trl_args(output_dir=output_dir, with_eval=False)
    # A reward model scores on this process's device, where the trainer puts the policy (``args.device`` sets
    # up the processes as the trainer will).
    scorer = load_reward_scorer(
        reward_model=config.reward_model, reward_function=config.reward_function, device=args.device
    )
    trainer = trainer_class(
        model=str(base_model),
        reward_funcs=trl_reward_function(scorer),
        args=args,
        train_dataset=train_dataset,
        processing_class=processing_class,
        peft_config=config.lora_config(),
    )
    return run_trainer(
        trainer=trainer,
        output_dir=output_dir,
        hooks=hooks,
        resume=resume,
        merge_lora=config.merge_lora,
        freeze_vision=config.freeze_vision,
        model_info={"kind": "policy"},
    )


def train_grpo(
    *,
    config: GRPOConfig,
    train_path: Path,
    base_model: str,
    output_dir: Path,
    eval_path: Path | None = None,
    hooks: RunHooks | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``base_model`` with GRPO on the prompts of the preference file ``train_path``.

    Arguments as for ``train_dpo``; ``eval_path`` is not used. Per-step metrics are trl's: ``loss``,
    ``reward``, ``reward_std``, ``kl`` (when ``beta`` > 0), ``clip_ratio/...``, ``completions/mean_length``,
    ``learning_rate``, ``num_tokens``, ``tokens_per_second``.
    """
    from trl import GRPOTrainer

    return _train_online(
        trainer_class=GRPOTrainer,
        config=config,
        train_path=train_path,
        base_model=base_model,
        output_dir=output_dir,
        hooks=hooks,
        resume=resume,
    )


def train_rloo(
    *,
    config: RLOOConfig,
    train_path: Path,
    base_model: str,
    output_dir: Path,
    eval_path: Path | None = None,
    hooks: RunHooks | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``base_model`` with RLOO on the prompts of ``train_path``; as ``train_grpo`` otherwise."""
    from trl import RLOOTrainer

    return _train_online(
        trainer_class=RLOOTrainer,
        config=config,
        train_path=train_path,
        base_model=base_model,
        output_dir=output_dir,
        hooks=hooks,
        resume=resume,
    )
