"""The settings of every training method, as dataclasses whose fields carry help text.

They live apart from the methods' trainers because the web process validates a run's config before it
queues it, and the web process never imports torch, transformers or trl: this module imports none of them
at module level. Each method module re-exports its config (`from training.methods.dpo import DPOConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trl import DPOConfig as TrlDPOConfig


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
        import torch
        from trl import DPOConfig as TrlDPOConfig

        from training.core import CHECKPOINTS_DIR, cuda_bf16

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


@dataclass
class DDPOConfig(DPOConfig):
    """Settings of a DDPO run: DPO's, with the paper's beta, plus the weight of changed tokens."""

    beta: float = field(
        default=0.5,
        metadata={"help": "DPO's beta. RLHF-V's paper uses 0.5; its released training script uses 0.1."},
    )
    gamma: float = field(
        default=5.0,
        metadata={
            "help": "Weight of changed (corrected) tokens relative to unchanged ones. RLHF-V's paper uses 5; its "
            "released training script uses 1.1. 1 gives DPO on mean token log-probabilities."
        },
    )
    min_match_tokens: int = field(
        default=3,
        metadata={"help": "Shortest run of equal tokens that counts as unchanged in the chosen/rejected diff."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gamma <= 0:
            raise ValueError(f"gamma must be positive, not {self.gamma}")
        if self.min_match_tokens < 1:
            raise ValueError(f"min_match_tokens must be at least 1, not {self.min_match_tokens}")
