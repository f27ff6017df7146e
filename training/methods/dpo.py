"""Direct Preference Optimization (DPO) on Loupe preference data, for text and vision-language models.

DPO (Rafailov et al., 2023, "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
https://arxiv.org/abs/2305.18290) trains the policy directly on (prompt, chosen, rejected) rows with

    loss = -log sigmoid(beta * [(log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected))])

where ref is the frozen starting model. The loss and the training loop are trl's ``DPOTrainer``; this module
holds Loupe's config (small, with help text and defaults that work on a tiny model), turns a preference file
into trl's input (plain rows become a user/assistant conversation so the chat template and, for a VLM, the
image placeholder apply), adds LoRA when asked (HA-DPO's setting: r=64 on q/k/v, lr 4e-6, beta 0.1, merged
after training) and runs it with Loupe's hooks, checkpoints and resume (``training.core``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
from trl import DPOTrainer

from training.core import (
    RunHooks,
    TrainResult,
    ensure_pad_token,
    image_tokens_per_row,
    load_preference_dataset,
    load_processing_class,
    run_trainer,
)
from training.methods.configs import DPOConfig

__all__ = ["DPOConfig", "as_conversation", "make_preference_trainer", "prepare_preference_data", "train_dpo"]


def as_conversation(dataset: datasets.Dataset) -> datasets.Dataset:
    """Turn plain-text rows into trl's conversational form: the prompt a user turn, each answer an
    assistant turn. Rows already in that form are left as they are."""
    if not isinstance(dataset[0]["prompt"], str):
        return dataset

    def to_messages(prompt: str, chosen: str, rejected: str) -> dict[str, Any]:
        return {
            "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }

    return dataset.map(to_messages, input_columns=["prompt", "chosen", "rejected"], desc="Rendering as chat")


def prepare_preference_data(*, path: Path, processing_class: Any, apply_chat_template: bool) -> datasets.Dataset:
    """Load a preference file and put it in the form the trainer should see (see ``DPOConfig``)."""
    dataset = load_preference_dataset(path)
    has_images = "images" in dataset.column_names or "image" in dataset.column_names
    has_template = getattr(processing_class, "chat_template", None) is not None
    if has_images and not has_template:
        raise ValueError(f"{path}: rows have images but the model's processor has no chat template to place them")
    if has_images or (apply_chat_template and has_template):
        dataset = as_conversation(dataset)
    return dataset


def make_preference_trainer(
    *,
    trainer_class: type[DPOTrainer],
    config: DPOConfig,
    train_path: Path,
    base_model: str,
    output_dir: Path,
    eval_path: Path | None,
    **trainer_kwargs: Any,
) -> DPOTrainer:
    """Build a ``DPOTrainer`` (or a subclass) for ``base_model`` on Loupe preference files.

    The reference model is a second copy of ``base_model`` (or, with LoRA, the base with adapters off), both
    loaded as ``config.model_init_kwargs`` says. ``max_length`` counts text: the image tokens of a
    vision-language model's rows are added to it, so no row is cut inside its image.
    """
    processing_class = load_processing_class(base_model)
    ensure_pad_token(processing_class)  # pairs are padded into batches: EOS pads where no pad token exists
    train_dataset = prepare_preference_data(
        path=train_path, processing_class=processing_class, apply_chat_template=config.apply_chat_template
    )
    eval_dataset = None
    if eval_path is not None:
        eval_dataset = prepare_preference_data(
            path=eval_path, processing_class=processing_class, apply_chat_template=config.apply_chat_template
        )
    image_tokens = image_tokens_per_row(processing_class, train_dataset, eval_dataset)
    return trainer_class(
        model=str(base_model),
        args=config.trl_args(output_dir=output_dir, with_eval=eval_dataset is not None, image_tokens=image_tokens),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processing_class,
        peft_config=config.lora_config(),
        **trainer_kwargs,
    )


def train_dpo(
    *,
    config: DPOConfig,
    train_path: Path,
    base_model: str,
    output_dir: Path,
    eval_path: Path | None = None,
    hooks: RunHooks | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``base_model`` (a hub id or a directory) with DPO on the preference file ``train_path``.

    Args:
        config (`DPOConfig`): the run's settings.
        train_path (`Path`): JSONL, Parquet or ``save_to_disk`` directory (see ``load_preference_dataset``).
        base_model (`str`): model to start from and to use as the frozen reference.
        output_dir (`Path`): the final model and tokenizer/processor land here; checkpoints in
            ``output_dir/checkpoints``.
        eval_path (`Path`, *optional*, defaults to `None`): held-out preference file, scored every
            ``eval_steps`` (metrics prefixed ``eval_``).
        hooks (`RunHooks`, *optional*, defaults to `None`): progress, log lines and cancellation.
        resume (`bool`, *optional*, defaults to `False`): continue from the last checkpoint in ``output_dir``.

    Per-step metrics include ``loss``, ``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``,
    ``rewards/accuracies``, ``learning_rate``, ``grad_norm``, ``num_tokens`` and ``tokens_per_second``.
    """
    trainer = make_preference_trainer(
        trainer_class=DPOTrainer,
        config=config,
        train_path=train_path,
        base_model=base_model,
        output_dir=output_dir,
        eval_path=eval_path,
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
