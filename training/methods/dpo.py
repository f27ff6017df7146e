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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
from trl import DPOConfig as TrlDPOConfig
from trl import DPOTrainer

from training.core import (
    CHECKPOINTS_DIR,
    RunHooks,
    TrainResult,
    cuda_bf16,
    load_preference_dataset,
    load_processing_class,
    run_trainer,
)


@dataclass
class DPOConfig:
    """Settings of a DPO run. Defaults suit the tiny test models; real models want a smaller learning rate."""

    beta: float = field(
        default=0.1,
        metadata={"help": "Strength of the pull towards the reference model (DPO's beta); higher stays closer."},
    )
    learning_rate: float = field(
        default=1e-4,
        metadata={"help": "Peak learning rate. 1e-4 moves a tiny model; 5e-7 to 5e-6 is usual for real models."},
    )
    max_steps: int = field(default=20, metadata={"help": "Number of optimizer steps."})
    per_device_train_batch_size: int = field(
        default=2, metadata={"help": "Preference pairs per device per forward pass."}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Forward passes accumulated into one optimizer step."}
    )
    max_length: int | None = field(
        default=512,
        metadata={"help": "Longest prompt + answer in tokens; longer ones are cut at the end. None: no limit."},
    )
    lr_scheduler_type: str = field(
        default="linear",
        metadata={"help": "Learning-rate schedule (transformers names: linear, cosine, ...)."},
    )
    warmup_steps: int = field(default=0, metadata={"help": "Steps of linear learning-rate warm-up."})
    seed: int = field(default=0, metadata={"help": "Seed for data order, dropout and LoRA initialisation."})
    save_steps: int = field(default=10, metadata={"help": "Write a resumable checkpoint every this many steps."})
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Keep at most this many checkpoints (oldest deleted). None keeps all."}
    )
    logging_steps: int = field(default=1, metadata={"help": "Report metrics every this many steps."})
    eval_steps: int | None = field(
        default=None,
        metadata={"help": "Evaluate on the eval file every this many steps; None: at every checkpoint."},
    )
    apply_chat_template: bool = field(
        default=True,
        metadata={
            "help": "Render plain-text rows as a user turn and an assistant turn with the model's chat template. "
            "Turn off for base models without one. Rows with images are always rendered this way, since the "
            "template is where the image placeholder goes."
        },
    )
    gradient_checkpointing: bool = field(
        default=True,
        metadata={"help": "Recompute activations to save GPU memory. Always off on CPU, where it only costs."},
    )
    use_lora: bool = field(
        default=False,
        metadata={"help": "Train LoRA adapters instead of all weights; merged into the saved model."},
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (HA-DPO uses 64 on 7B models)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj"],
        metadata={"help": "Module names that get adapters (HA-DPO: the attention q/k/v projections)."},
    )

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, not {self.beta}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, not {self.learning_rate}")
        for name in ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.logging_steps < 1:
            raise ValueError(f"logging_steps must be at least 1, not {self.logging_steps}")
        if self.max_length is not None and self.max_length < 8:
            raise ValueError(f"max_length must be at least 8 tokens or None, not {self.max_length}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps cannot be negative, not {self.warmup_steps}")
        if self.use_lora and (self.lora_r < 1 or self.lora_alpha <= 0 or not self.lora_target_modules):
            raise ValueError("LoRA needs lora_r >= 1, lora_alpha > 0 and at least one target module")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), not {self.lora_dropout}")

    def trl_args(self, *, output_dir: Path, with_eval: bool) -> TrlDPOConfig:
        """trl's config for this run: checkpoints under ``output_dir/checkpoints``, bf16 and gradient
        checkpointing only on CUDA, no external loggers."""
        on_cuda = torch.cuda.is_available()
        return TrlDPOConfig(
            output_dir=str(Path(output_dir) / CHECKPOINTS_DIR),
            beta=self.beta,
            learning_rate=self.learning_rate,
            max_steps=self.max_steps,
            per_device_train_batch_size=self.per_device_train_batch_size,
            per_device_eval_batch_size=self.per_device_train_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            max_length=self.max_length,
            lr_scheduler_type=self.lr_scheduler_type,
            warmup_steps=self.warmup_steps,
            seed=self.seed,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=self.save_total_limit,
            logging_strategy="steps",
            logging_steps=self.logging_steps,
            eval_strategy="steps" if with_eval else "no",
            eval_steps=(self.eval_steps or self.save_steps) if with_eval else None,
            bf16=cuda_bf16(),
            fp16=False,
            gradient_checkpointing=self.gradient_checkpointing and on_cuda,
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataloader_pin_memory=on_cuda,
            prediction_loss_only=True,  # evaluation needs the loss and metrics, never the full logits
        )

    def lora_config(self):
        """A peft ``LoraConfig`` when ``use_lora`` is on, else None."""
        if not self.use_lora:
            return None
        from peft import LoraConfig

        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=list(self.lora_target_modules),
            task_type="CAUSAL_LM",
        )


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

    The reference model is a second copy of ``base_model`` (or, with LoRA, the base with adapters off).
    """
    processing_class = load_processing_class(base_model)
    train_dataset = prepare_preference_data(
        path=train_path, processing_class=processing_class, apply_chat_template=config.apply_chat_template
    )
    eval_dataset = None
    if eval_path is not None:
        eval_dataset = prepare_preference_data(
            path=eval_path, processing_class=processing_class, apply_chat_template=config.apply_chat_template
        )
    return trainer_class(
        model=str(base_model),
        args=config.trl_args(output_dir=output_dir, with_eval=eval_dataset is not None),
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
    return run_trainer(trainer=trainer, output_dir=output_dir, hooks=hooks, resume=resume)
