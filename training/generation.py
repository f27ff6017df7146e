"""Sampling answers from a policy: what PPO's rollouts and best-of-N share, for text and vision-language models.

A prompt is rendered exactly as the training methods render it (``training.core.render_text``: the chat
template, with the image placeholder for a VLM), then the model's answer prefix is appended: a model trained
with SciCap-style control tokens answers after its good token (``[GOOD] ``), which its folder records in
``loupe_model.json`` and ``answer_prefix_of`` reads back. Answers come back without that prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

from training.core import (
    encode_texts,
    ensure_pad_token,
    is_vision_model,
    load_processing_class,
    read_model_info,
    render_text,
    tokenizer_of,
)


def answer_prefix_of(model_dir: str | Path) -> str:
    """The text a model's answers start with (its control token), as its folder records; usually ``""``."""
    return str(read_model_info(model_dir).get("answer_prefix", ""))


def load_policy(path: str | Path, *, device: torch.device | str | None = None) -> tuple[torch.nn.Module, Any]:
    """A generating model (causal LM or VLM; an adapter folder is loaded onto its base) and its
    tokenizer or processor (given a pad token if it has none), in eval mode on ``device`` (CPU if None).

    Sampling only, so on a GPU the weights keep their saved dtype (a bf16 checkpoint samples in bf16); on
    the CPU they are loaded in fp32, where bf16 matmuls are slow and not supported by every kernel."""
    on_cpu = device is None or torch.device(device).type == "cpu"
    dtype = torch.float32 if on_cpu else "auto"
    folder = Path(path)
    if (folder / "adapter_config.json").is_file():  # a LoRA adapter saved unmerged
        from peft import PeftConfig, PeftModel

        base = PeftConfig.from_pretrained(str(folder)).base_model_name_or_path
        model = PeftModel.from_pretrained(load_generator(base, dtype=dtype), str(folder))
        own_tokenizer = (folder / "tokenizer_config.json").is_file()
        processing_class = load_processing_class(folder if own_tokenizer else base, vision=is_vision_model(base))
    else:
        model = load_generator(path, dtype=dtype)
        processing_class = load_processing_class(path)
    ensure_pad_token(processing_class, model)
    model.eval()
    if device is not None:
        model.to(device)
    return model, processing_class


def load_generator(path: str | Path, *, dtype: torch.dtype | str | None = None) -> torch.nn.Module:
    """The model at ``path`` with its generating head: a VLM or a causal LM, in ``dtype`` (None: as saved).

    Training passes ``training.core.TRAINING_DTYPE``: fp32 master weights whatever the checkpoint's dtype."""
    model_class = AutoModelForImageTextToText if is_vision_model(path) else AutoModelForCausalLM
    return model_class.from_pretrained(str(path), **({"dtype": dtype} if dtype is not None else {}))


@dataclass
class PromptBatch:
    """Rendered prompts as model inputs, left-padded so every answer starts at the same position."""

    inputs: dict[str, torch.Tensor]  # input_ids, attention_mask (B, P) and any image inputs
    prompt_length: int


def encode_prompts(
    processing_class: Any,
    *,
    prompts: Sequence[str | list[dict]],
    images: Sequence[list] | None,
    use_template: bool,
    answer_prefix: str = "",
) -> PromptBatch:
    """Render and tokenize prompts (with their images) up to where the answer (after ``answer_prefix``) starts."""
    if images is not None and any(images) and not all(images):
        raise ValueError("a batch mixes prompts with and without images; give every prompt an image or none")
    with_images = images is not None and all(images)
    # The prefix's trailing space is left for the model to write: in training "[GOOD] A" tokenizes as "]", " A"
    # (the space joins the next word), so a prompt ending on a lone " " token is one the model never saw.
    texts = [
        render_text(processing_class, prompt=p, answer=None, with_image=with_images, use_template=use_template)
        + answer_prefix.rstrip()
        for p in prompts
    ]
    tokenizer = tokenizer_of(processing_class)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues every row from the same last position
    try:
        inputs = encode_texts(processing_class, texts=texts, images=list(images) if with_images else None)
    finally:
        tokenizer.padding_side = side
    return PromptBatch(inputs=inputs, prompt_length=inputs["input_ids"].size(1))


def completion_mask(completion_ids: torch.Tensor, *, eos_token_id: int | list[int] | None) -> torch.Tensor:
    """1 on the answer's tokens up to and including its first EOS, 0 after (B, C) -> (B, C) long."""
    if eos_token_id is None:
        return torch.ones_like(completion_ids)
    eos_ids = torch.tensor([eos_token_id] if isinstance(eos_token_id, int) else eos_token_id)
    is_eos = torch.isin(completion_ids, eos_ids.to(completion_ids.device)).long()  # (B, C)
    after_eos = (is_eos.cumsum(dim=-1) - is_eos) > 0  # strictly after the first EOS
    return (~after_eos).long()


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    processing_class: Any,
    batch: PromptBatch,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    do_sample: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one answer per prompt. Returns ``(completion_ids, completion_mask)``, both (B, C)."""
    tokenizer = tokenizer_of(processing_class)
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in batch.inputs.items()}
    extra: dict[str, Any] = {}
    image_token_id = getattr(model.config, "image_token_id", None)
    if image_token_id is not None:  # a sampled image placeholder would have no image features to match
        extra["suppress_tokens"] = [image_token_id]
    sequences = model.generate(
        **inputs,
        **extra,
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        temperature=temperature if do_sample else None,
        top_p=top_p if do_sample else None,
        top_k=0 if do_sample else None,  # plain sampling from the whole distribution unless top_p says otherwise
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    completion_ids = sequences[:, batch.prompt_length :]
    return completion_ids, completion_mask(completion_ids, eos_token_id=tokenizer.eos_token_id)


def decode_answers(processing_class: Any, completion_ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """The answers' texts (special tokens and padding dropped, surrounding spaces stripped)."""
    tokenizer = tokenizer_of(processing_class)
    return [
        tokenizer.decode(ids[m.bool()].tolist(), skip_special_tokens=True).strip()
        for ids, m in zip(completion_ids, mask, strict=True)
    ]


def sample_answers(
    model: torch.nn.Module,
    processing_class: Any,
    *,
    prompts: Sequence[str | list[dict]],
    images: Sequence[list] | None = None,
    n: int = 1,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    top_p: float = 1.0,
    answer_prefix: str = "",
    use_template: bool = True,
    do_sample: bool = True,
) -> list[list[str]]:
    """``n`` answers for each prompt (a list of ``n`` strings per prompt), prefix removed."""
    repeated_prompts = [p for p in prompts for _ in range(n)]
    repeated_images = [list(i) for i in images for _ in range(n)] if images is not None else None
    batch = encode_prompts(
        processing_class,
        prompts=repeated_prompts,
        images=repeated_images,
        use_template=use_template,
        answer_prefix=answer_prefix,
    )
    completion_ids, mask = generate(
        model,
        processing_class,
        batch,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        do_sample=do_sample,
    )
    answers = decode_answers(processing_class, completion_ids, mask)
    return [answers[i * n : (i + 1) * n] for i in range(len(prompts))]
