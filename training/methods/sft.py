"""Supervised fine-tuning (SFT) on the answers people preferred, optionally with feedback control tokens.

Loupe's snapshots hold preference pairs, so SFT rows are made from them: each distinct answer of a prompt
(and image) is counted over the pairs it appears in; one chosen more often than rejected is "good", one
rejected more often is "bad", a tie is left out. Without control tokens SFT learns the good answers only.
With them (SciCap's feedback-conditioned captioning: Hsu et al., 2023) it learns both, good answers after
``[GOOD]`` and bad ones after ``[BAD]``, so the model learns what feedback marked each; at generation the
good token is prepended (the saved folder records it: ``training.generation.answer_prefix_of``). The control
tokens stay plain text, tokenized like any other, so no embedding is added and the tokenizer is unchanged.

A run can instead read a prompt/completion JSONL (``sft_data``), e.g. a best-of-N run's ``best.jsonl``: the
next round's SFT data. Training is trl's ``SFTTrainer`` on prompt/completion rows (loss on the answer only),
as chats with the image placeholder for a vision-language model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
from trl import SFTTrainer

from training.core import (
    RunHooks,
    TrainResult,
    conversation,
    ensure_pad_token,
    first_row,
    has_chat_template,
    image_tokens_per_row,
    is_vision_model,
    load_preference_dataset,
    load_processing_class,
    message_text,
    row_images,
    run_trainer,
)
from training.methods.configs import SFTConfig

__all__ = ["SFTConfig", "answer_prefix_for", "load_sft_rows", "sft_rows_from_preferences", "train_sft"]


def sft_rows_from_preferences(
    dataset: datasets.Dataset, *, control_tokens: bool, good_token: str, bad_token: str
) -> list[dict[str, Any]]:
    """Prompt/completion rows from preference rows (see the module docstring for the rule).

    Returns dicts ``{"prompt", "completion", "images"?}`` in first-seen order; with control tokens the
    completion starts with ``good_token`` or ``bad_token`` and a space.
    """
    tally: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in dataset:
        images = row_images(row)
        image_key = json.dumps([getattr(image, "filename", None) or id(image) for image in images])
        prompt_key = json.dumps(row["prompt"], sort_keys=True)
        for side, delta in (("chosen", 1), ("rejected", -1)):
            answer = message_text(row[side])
            entry = tally.setdefault(
                (prompt_key, image_key, answer), {"prompt": row["prompt"], "images": images, "answer": answer, "net": 0}
            )
            entry["net"] += delta
    rows = []
    for entry in tally.values():
        if entry["net"] == 0 or (entry["net"] < 0 and not control_tokens):
            continue
        completion = entry["answer"]
        if control_tokens:
            completion = f"{good_token if entry['net'] > 0 else bad_token} {completion}"
        row = {"prompt": entry["prompt"], "completion": completion}
        if entry["images"]:
            row["images"] = entry["images"]
        rows.append(row)
    return rows


def load_sft_rows(path: Path) -> list[dict[str, Any]]:
    """Prompt/completion rows from a JSONL file (image paths relative to the file), checked line by line."""
    rows = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not JSON ({error.msg})") from error
            if not isinstance(record.get("prompt"), str | list) or not isinstance(record.get("completion"), str):
                raise ValueError(f"{path}, line {number}: needs a 'prompt' and a text 'completion'")
            row = {"prompt": record["prompt"], "completion": record["completion"]}
            if record.get("images"):
                row["images"] = [str((Path(path).parent / image).resolve()) for image in record["images"]]
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def _as_dataset(rows: list[dict[str, Any]], *, chat: bool) -> datasets.Dataset:
    """trl's prompt/completion form: chats (user turn, assistant turn) when ``chat``, else plain text."""
    with_images = any(row.get("images") for row in rows)
    if with_images and not all(row.get("images") for row in rows):
        raise ValueError("some SFT rows have images and some do not; a run trains on one kind")
    records = []
    for row in rows:
        record: dict[str, Any] = {"prompt": row["prompt"], "completion": row["completion"]}
        if chat or with_images:
            record["prompt"] = conversation(row["prompt"], with_image=False)
            record["completion"] = [{"role": "assistant", "content": row["completion"]}]
        if with_images:
            record["images"] = row["images"]
        records.append(record)
    dataset = datasets.Dataset.from_list(records)
    if with_images:
        dataset = dataset.cast_column("images", datasets.List(datasets.Image()))
    return dataset


def _rows_for(path: Path, config: SFTConfig, *, vision: bool) -> list[dict[str, Any]]:
    """SFT rows from a training file: prompt/completion rows as they are (an ``sft`` snapshot, whose rated
    answers already carry their control tokens), preference rows by the wins-and-losses rule."""
    if Path(path).suffix == ".jsonl" and "completion" in first_row(path):
        rows = load_sft_rows(path)
    else:
        rows = sft_rows_from_preferences(
            load_preference_dataset(path),
            control_tokens=config.control_tokens,
            good_token=config.good_token,
            bad_token=config.bad_token,
        )
    if not vision:  # a text model reads the prompt alone
        rows = [{k: v for k, v in row.items() if k != "images"} for row in rows]
    return rows


def answer_prefix_for(rows: list[dict[str, Any]], config: SFTConfig) -> str:
    """The good token (and a space) when the model learns control tokens, from the config or from data whose
    answers already start with the good or bad token; else nothing."""
    tagged = any(row["completion"].startswith((f"{config.good_token} ", f"{config.bad_token} ")) for row in rows)
    return f"{config.good_token} " if config.control_tokens or tagged else ""


def train_sft(
    *,
    config: SFTConfig,
    train_path: Path,
    base_model: str,
    output_dir: Path,
    eval_path: Path | None = None,
    hooks: RunHooks | None = None,
    resume: bool = False,
) -> TrainResult:
    """Fine-tune ``base_model`` on the good answers of the preference file ``train_path`` (or on
    ``config.sft_data``), with SciCap control tokens when ``config.control_tokens`` is on. ``train_path``
    may instead hold prompt/completion rows (an ``sft`` snapshot), trained on as they are.

    Arguments as for ``train_dpo``; the eval file gets the same treatment. Per-step metrics are trl's
    ``loss``, ``mean_token_accuracy``, ``entropy``, ``num_tokens``, ``learning_rate``, ``grad_norm`` plus
    ``tokens_per_second``.
    """
    processing_class = load_processing_class(base_model)
    ensure_pad_token(processing_class)  # answers are padded into batches: EOS pads where no pad token exists
    vision = is_vision_model(base_model)
    chat = has_chat_template(processing_class) and config.apply_chat_template
    if vision and not has_chat_template(processing_class):
        raise ValueError(f"{base_model}: a vision-language model needs a chat template to place the image")
    train_rows = _rows_for(Path(config.sft_data) if config.sft_data.strip() else train_path, config, vision=vision)
    if not train_rows:
        raise ValueError(f"{train_path}: no answer was preferred more often than not, so there is nothing to learn")
    eval_dataset = None
    eval_rows = _rows_for(eval_path, config, vision=vision) if eval_path is not None and not config.sft_data else []
    if eval_rows:
        eval_dataset = _as_dataset(eval_rows, chat=chat)
    train_dataset = _as_dataset(train_rows, chat=chat)
    image_tokens = image_tokens_per_row(processing_class, train_dataset, eval_dataset)
    trainer = SFTTrainer(
        model=str(base_model),
        args=config.trl_args(output_dir=output_dir, with_eval=eval_dataset is not None, image_tokens=image_tokens),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
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
        model_info={"kind": "policy", "answer_prefix": answer_prefix_for(train_rows, config)},
    )
