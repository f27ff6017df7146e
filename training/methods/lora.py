"""Merging LoRA adapters into full models.

A run with ``use_lora`` and ``merge_lora`` off saves only its adapter (small, quick to share); to label,
sample or benchmark with it as any other model, merge it: ``W' = W + (alpha / r) * B @ A`` on each adapted
weight (Hu et al., 2021, "LoRA: Low-Rank Adaptation of Large Language Models"), which is what peft's
``merge_and_unload`` computes. The merged folder carries the base's tokenizer or processor and the
adapter's ``loupe_model.json``, so it loads and generates like the base, and its config names the pad token
(EOS when the base's tokenizer has none), so a merged reward model scores padded batches.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from peft import PeftConfig, PeftModel

from training.core import (
    MODEL_INFO_FILE,
    ensure_pad_token,
    is_vision_model,
    load_processing_class,
    read_model_info,
    write_model_info,
)
from training.generation import load_generator

__all__ = ["merge_adapter"]


def merge_adapter(*, adapter_dir: Path, output_dir: Path, base_model: str | None = None) -> Path:
    """Merge the LoRA adapter in ``adapter_dir`` into its base and save the full model in ``output_dir``.

    ``base_model`` overrides the base the adapter names (``base_model_name_or_path`` in its config), e.g.
    when the base folder has moved. Sequence-classification reward adapters are merged on a reward head.
    """
    adapter_dir, output_dir = Path(adapter_dir), Path(output_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ValueError(f"{adapter_dir} holds no LoRA adapter (adapter_config.json is missing)")
    peft_config = PeftConfig.from_pretrained(str(adapter_dir))
    base = base_model or peft_config.base_model_name_or_path
    if peft_config.task_type == "SEQ_CLS":
        from transformers import AutoModelForSequenceClassification

        base_weights = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1)
    else:
        base_weights = load_generator(base)
    merged = PeftModel.from_pretrained(base_weights, str(adapter_dir)).merge_and_unload()
    has_own_tokenizer = any(
        (adapter_dir / name).is_file() for name in ("tokenizer_config.json", "processor_config.json")
    )
    processing_source = adapter_dir if has_own_tokenizer else base
    processing_class = load_processing_class(processing_source, vision=is_vision_model(base))
    # The base's config may name no pad token (Llama-2): record the one the run padded with, or EOS.
    ensure_pad_token(processing_class, merged)
    output_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(output_dir)
    processing_class.save_pretrained(output_dir)
    info = read_model_info(adapter_dir)
    if (adapter_dir / MODEL_INFO_FILE).is_file() or info:
        write_model_info(output_dir, {**info, "is_adapter": False})
    chat_template = adapter_dir / "chat_template.jinja"
    if chat_template.is_file() and not (output_dir / "chat_template.jinja").is_file():
        shutil.copy(chat_template, output_dir / "chat_template.jinja")
    return output_dir
