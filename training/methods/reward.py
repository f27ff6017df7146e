"""Reward models: Bradley-Terry on chosen/rejected pairs, for text and vision-language models.

A reward model maps (prompt, answer[, image]) to one number. Trained on preference pairs with the
Bradley-Terry loss ``-log sigmoid(r(chosen) - r(rejected))`` (Ouyang et al., 2022, "Training language models
to follow instructions with human feedback"), it learns to score the preferred answer higher; its pairwise
accuracy on held-out pairs says how far it can be trusted. PPO, GRPO, RLOO and best-of-N use it as their
reward (``training.rewards``).

Text models get a sequence-classification head (``AutoModelForSequenceClassification`` with one label,
loadable by any tool, trl's GRPO included). Vision-language models have no such class in transformers, so
``VisionRewardModel`` puts a linear head on the VLM's last hidden state at the last token, and saves as the
VLM's own folder plus ``reward_head.safetensors``. The training loop is a small ``transformers.Trainer``
subclass rather than trl's ``RewardTrainer``, which tokenizes text only: one path serves both kinds of model,
rendering each pair as the chat it will be scored as.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification, Trainer, set_seed
from transformers.modeling_outputs import SequenceClassifierOutput

from training.core import (
    RunHooks,
    TrainResult,
    encode_texts,
    ensure_pad_token,
    has_chat_template,
    is_vision_model,
    load_preference_dataset,
    load_processing_class,
    message_text,
    read_model_info,
    render_text,
    row_images,
    run_trainer,
)
from training.methods.configs import RewardConfig

__all__ = [
    "BradleyTerryTrainer",
    "PairCollator",
    "RewardConfig",
    "VisionRewardModel",
    "load_reward_model",
    "train_reward",
]

REWARD_HEAD_FILE = "reward_head.safetensors"


# --------------------------------------------------------------------------------------------------------------
# The model


class VisionRewardModel(nn.Module):
    """A vision-language model's backbone with a scalar head on the hidden state of the last real token."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.config = backbone.config  # the Trainer and peft read it
        self.score = nn.Linear(backbone.config.get_text_config().hidden_size, 1, bias=False)
        nn.init.normal_(self.score.weight, std=1.0 / self.score.in_features**0.5)

    @classmethod
    def from_base(cls, path: str | Path, **from_pretrained_kwargs: Any) -> VisionRewardModel:
        """A new reward model on the VLM at ``path`` (its head random), or a saved one reloaded;
        ``from_pretrained_kwargs`` (dtype, quantization) go to the backbone's ``from_pretrained``."""
        model = cls(AutoModel.from_pretrained(str(path), **from_pretrained_kwargs))
        head = Path(path) / REWARD_HEAD_FILE
        if head.is_file():
            model.score.load_state_dict(load_file(str(head)))
        return model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> SequenceClassifierOutput:
        kwargs.pop("use_cache", None)
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs)
        hidden = hidden.last_hidden_state  # (B, L, H)
        # The last real token: the rightmost 1 of the mask, whichever side was padded.
        positions = torch.arange(attention_mask.size(1), device=attention_mask.device)
        last = (positions * attention_mask).argmax(dim=-1)  # (B,)
        pooled = hidden[torch.arange(hidden.size(0), device=hidden.device), last]  # (B, H)
        return SequenceClassifierOutput(logits=self.score(pooled.to(self.score.weight.dtype)))  # (B, 1)

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        self.backbone.gradient_checkpointing_enable(**kwargs)

    def save_pretrained(self, output_dir: str | Path, **kwargs: Any) -> None:
        """The backbone as its own model folder (LoRA adapters merged) plus the head's weights."""
        output_dir = Path(output_dir)
        backbone = self.backbone
        if hasattr(backbone, "merge_and_unload"):
            backbone = backbone.merge_and_unload()
        backbone.save_pretrained(output_dir, **kwargs)
        save_file({k: v.contiguous() for k, v in self.score.state_dict().items()}, str(output_dir / REWARD_HEAD_FILE))


def load_reward_model(path: str | Path) -> tuple[nn.Module, Any, bool]:
    """Load a reward model for scoring: ``(model, processing class, renders with the chat template)``.

    A folder written by ``train_reward`` says how it renders; a foreign text reward model is rendered with
    its chat template when its tokenizer has one.
    """
    processing_class = load_processing_class(path)
    info = read_model_info(path)
    if is_vision_model(path):
        model: nn.Module = VisionRewardModel.from_base(path)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1)
    # Scoring pads batches; a foreign reward model whose tokenizer has no pad token pads (and pools) with EOS.
    ensure_pad_token(processing_class, model)
    use_template = bool(info.get("chat_template", has_chat_template(processing_class)))
    model.eval()
    return model, processing_class, use_template


def _new_reward_model(*, base_model: str, processing_class: Any, config: RewardConfig) -> nn.Module:
    """The model a reward run trains: ``base_model`` with a new scalar head, in fp32 master weights (or a
    4-bit base with ``use_qlora``), its head drawn from ``config.seed``."""
    # The head is initialised when the model is built, before the Trainer seeds anything.
    set_seed(config.seed)
    kwargs = config.model_init_kwargs()
    if config.use_qlora:  # 4-bit weights are placed on this process's GPU as they load
        from accelerate import PartialState

        kwargs["device_map"] = {"": PartialState().local_process_index}
    if is_vision_model(base_model):
        model: nn.Module = VisionRewardModel.from_base(base_model, **kwargs)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(str(base_model), num_labels=1, **kwargs)
    # The classification head pools at the last non-pad token, so it must know the pad token.
    ensure_pad_token(processing_class, model)
    if config.use_qlora:
        from peft import prepare_model_for_kbit_training

        backbone = model.backbone if isinstance(model, VisionRewardModel) else model
        prepare_model_for_kbit_training(backbone, use_gradient_checkpointing=config.gradient_checkpointing)
    return model


# --------------------------------------------------------------------------------------------------------------
# Data


@dataclass
class PairCollator:
    """Turns preference rows into one batch of 2B sequences: B chosen, then B rejected (same prompt, image)."""

    processing_class: Any
    use_template: bool
    max_length: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        texts, images = [], []
        for side in ("chosen", "rejected"):
            for example in examples:
                example_images = row_images(example)
                texts.append(
                    render_text(
                        self.processing_class,
                        prompt=example["prompt"],
                        answer=message_text(example[side]),
                        with_image=bool(example_images),
                        use_template=self.use_template,
                    )
                )
                images.append(example_images)
        return encode_texts(self.processing_class, texts=texts, images=images, max_length=self.max_length)


# --------------------------------------------------------------------------------------------------------------
# The trainer


class BradleyTerryTrainer(Trainer):
    """``transformers.Trainer`` with the Bradley-Terry loss on (chosen, rejected) batches from ``PairCollator``.

    Logs, per step, the loss and (like DPO) ``rewards/chosen``, ``rewards/rejected``, ``rewards/margins`` and
    ``rewards/accuracies`` (the pairwise accuracy), plus ``num_tokens``; evaluation logs them with ``eval_``.
    """

    def __init__(self, *args: Any, center_rewards_coefficient: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.center_rewards_coefficient = center_rewards_coefficient
        self._metrics: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._total_train_tokens = 0
        # Evaluation calls compute_loss only when the trainer may return a loss without labels.
        self.can_return_loss = True
        self.label_names = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        outputs = model(**inputs)
        rewards = outputs.logits.squeeze(-1).float()  # (2B,)
        chosen, rejected = rewards.chunk(2)  # (B,) each
        loss = -F.logsigmoid(chosen - rejected).mean()
        if self.center_rewards_coefficient:
            loss = loss + self.center_rewards_coefficient * ((chosen + rejected) ** 2).mean()

        gather = self.accelerator.gather_for_metrics
        metrics = self._metrics[mode]
        if mode == "train":
            self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item()
        metrics["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():
            metrics["rewards/chosen"].append(gather(chosen).mean().item())
            metrics["rewards/rejected"].append(gather(rejected).mean().item())
            metrics["rewards/margins"].append(gather(chosen - rejected).mean().item())
            metrics["rewards/accuracies"].append(gather((chosen > rejected).float()).mean().item())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        metrics = {key: sum(values) / len(values) for key, values in self._metrics[mode].items() if values}
        if mode == "eval":
            metrics = {f"eval_{key}": value for key, value in metrics.items()}
        logs.update(metrics)
        super().log(logs, start_time)
        self._metrics[mode].clear()


def train_reward(
    *,
    config: RewardConfig,
    train_path: Path,
    base_model: str,
    output_dir: Path,
    eval_path: Path | None = None,
    hooks: RunHooks | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train a reward model on ``base_model`` (a causal LM, a VLM or a reward model) from a preference file.

    Arguments as for ``train_dpo``. With ``eval_path`` (the snapshot's test split) the pairwise accuracy on
    held-out pairs is reported as ``eval_rewards/accuracies``, at every evaluation and at the end. The saved
    folder loads with ``load_reward_model``. Weights train in fp32 whatever the checkpoint's dtype (bf16 by
    autocast on a GPU); a tokenizer without a pad token pads with EOS, which the saved config records.
    """
    processing_class = load_processing_class(base_model)
    ensure_pad_token(processing_class)  # pairs are padded into one batch: EOS pads where no pad token exists
    use_template = has_chat_template(processing_class) and config.apply_chat_template
    train_dataset = load_preference_dataset(train_path)
    if "images" in train_dataset.column_names and not has_chat_template(processing_class):
        raise ValueError(f"{train_path}: rows have images but the model's processor has no chat template")
    eval_dataset = load_preference_dataset(eval_path) if eval_path is not None else None

    model = _new_reward_model(base_model=base_model, processing_class=processing_class, config=config)
    if config.use_lora:
        from peft import get_peft_model

        if isinstance(model, VisionRewardModel):
            model.backbone = get_peft_model(model.backbone, config.lora_config(task_type="FEATURE_EXTRACTION"))
        else:
            model = get_peft_model(model, config.lora_config(task_type="SEQ_CLS", modules_to_save=["score"]))
    trainer = BradleyTerryTrainer(
        model=model,
        args=config.trl_args(output_dir=output_dir, with_eval=eval_dataset is not None),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=PairCollator(processing_class, use_template=use_template, max_length=config.max_length),
        processing_class=processing_class,
        center_rewards_coefficient=config.center_rewards_coefficient,
    )
    return run_trainer(
        trainer=trainer,
        output_dir=output_dir,
        hooks=hooks,
        resume=resume,
        merge_lora=config.merge_lora,
        freeze_vision=config.freeze_vision,
        model_info={"kind": "reward", "chat_template": use_template},
    )
