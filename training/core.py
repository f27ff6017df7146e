"""Shared plumbing and numerics for Loupe's training methods (``training/methods/``).

What lives here is what every method needs once: the hooks a caller passes in to watch and cancel a run
(``RunHooks``) and the ``transformers`` callback that drives them (in a multi-process run only the main
process reports, and all processes follow its decision to stop), the result a run returns, running a trainer
with checkpoints and resume, saving the final model with ``loupe_model.json`` (its kind and the answer prefix
generation must use), loading preference or prompt files into a ``datasets.Dataset``, rendering a prompt and
answer as the model reads them (the chat template, with the image placeholder for a VLM), and per-token
log-probabilities. It is plain Python (no Django) but imports torch and transformers, so only worker-side
code imports it; web code that only needs the ``RunHooks`` shape can type against it under
``TYPE_CHECKING`` (it is a structural ``Protocol``: any object with these methods works).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import datasets
import torch
from transformers import (
    AutoConfig,
    AutoProcessor,
    AutoTokenizer,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback

from training.checkpoints import DISCARDED_LINE, discard_incomplete_checkpoints, last_complete_checkpoint

CHECKPOINTS_DIR = "checkpoints"
PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")


# --------------------------------------------------------------------------------------------------------------
# Watching and cancelling a run


class RunHooks(Protocol):
    """What a caller gives a training run to follow it and stop it (e.g. a Celery task writing a DB row)."""

    def on_step(self, step: int, max_steps: int, metrics: dict[str, float]) -> None:
        """Called at every logging step with the step reached, the planned total and that step's metrics."""

    def should_stop(self) -> bool:
        """Polled after every optimizer step; True ends the run after saving a checkpoint."""

    def on_log_line(self, line: str) -> None:
        """A human-readable line for the run's log."""


class NullHooks:
    """Hooks that watch nothing and never stop the run."""

    def on_step(self, step: int, max_steps: int, metrics: dict[str, float]) -> None:
        pass

    def should_stop(self) -> bool:
        return False

    def on_log_line(self, line: str) -> None:
        pass


def is_main_process() -> bool:
    """True in a single-process run and on rank 0 of a distributed one (``accelerate launch``, ``torchrun``)."""
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0
    )


def agree_to_stop(wanted: bool) -> bool:
    """Rank 0's answer, on every rank: processes that disagreed about stopping would wait on each other forever."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return wanted
    decision = [wanted]
    torch.distributed.broadcast_object_list(decision, src=0)
    return bool(decision[0])


class HooksCallback(TrainerCallback):
    """Forwards a ``transformers.Trainer``'s logs and progress to ``RunHooks`` and stops it when asked.

    Adds ``tokens_per_second`` to the metrics when the trainer logs a running ``num_tokens`` count (trl's
    trainers do), measured between two logs. In a multi-process run only the main process reports, and every
    process follows the main one's decision to stop.
    """

    def __init__(self, hooks: RunHooks) -> None:
        self.hooks = hooks
        self.stopped_early = False
        self.history: list[dict[str, float]] = []
        self._last_tokens: float | None = None
        self._last_time: float | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._last_time = time.perf_counter()
        if state.is_world_process_zero:
            where = f" on {args.world_size} processes" if args.world_size > 1 else ""
            self.hooks.on_log_line(f"training starts at step {state.global_step} of {state.max_steps}{where}")

    def on_log(self, args, state: TrainerState, control: TrainerControl, logs=None, **kwargs):
        metrics = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
        now = time.perf_counter()
        if "num_tokens" in metrics:
            if self._last_tokens is not None and self._last_time is not None and now > self._last_time:
                metrics["tokens_per_second"] = (metrics["num_tokens"] - self._last_tokens) / (now - self._last_time)
            self._last_tokens = metrics["num_tokens"]
        self._last_time = now
        if not state.is_world_process_zero:
            return
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        if "train_runtime" in metrics:  # the end-of-training summary, not a step of its own
            self.hooks.on_log_line(f"finished at step {state.global_step}: {shown}")
            return
        self.history.append({"step": float(state.global_step), **metrics})
        self.hooks.on_step(state.global_step, state.max_steps, metrics)
        self.hooks.on_log_line(f"step {state.global_step}/{state.max_steps}: {shown}")

    def on_step_end(self, args, state: TrainerState, control: TrainerControl, **kwargs):
        if not self.stopped_early and agree_to_stop(state.is_world_process_zero and self.hooks.should_stop()):
            self.stopped_early = True
            control.should_training_stop = True
            control.should_save = True  # so the run can resume from exactly here
            if state.is_world_process_zero:
                self.hooks.on_log_line(f"stop requested: checkpoint at step {state.global_step}, then stopping")
        return control


@dataclass
class TrainResult:
    """What a finished (or stopped) run leaves: where, how far, its last metrics and its metric history.

    The final model is in ``output_dir`` only when the run completed; a stopped run leaves a checkpoint in
    ``output_dir / "checkpoints"`` to resume from.
    """

    output_dir: Path
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------------
# Running a trainer


def cuda_bf16() -> bool:
    """Whether to train in bf16: only on a CUDA device that supports it (CPU bf16 is slow and inexact here)."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def is_vision_model(base_model: str | Path) -> bool:
    """True when the model at ``base_model`` has a vision tower (its config carries a ``vision_config``)."""
    return getattr(AutoConfig.from_pretrained(str(base_model)), "vision_config", None) is not None


def load_processing_class(base_model: str | Path, *, vision: bool | None = None):
    """The processor of a vision-language model, else the tokenizer, loaded from ``base_model``.

    ``vision`` says which, for a folder without a model config (an adapter's)."""
    if vision if vision is not None else is_vision_model(base_model):
        return AutoProcessor.from_pretrained(str(base_model))
    return AutoTokenizer.from_pretrained(str(base_model))


def tokenizer_of(processing_class: Any) -> Any:
    """The tokenizer inside a processor, or the tokenizer itself."""
    return getattr(processing_class, "tokenizer", processing_class)


def ensure_pad_token(processing_class: Any, *models: torch.nn.Module) -> None:
    """Give a tokenizer without a pad token (Llama-2, Mistral-7B-Instruct-v0.1) its eos as pad, and record
    the pad id in each model's config and generation config, so batching works and saved or merged models
    keep it. Padded positions are masked everywhere Loupe pads, so eos doubling as pad changes no loss."""
    tokenizer = tokenizer_of(processing_class)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad token nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    for model in models:
        for config in (getattr(model, "config", None), getattr(model, "generation_config", None)):
            if config is not None:
                config.pad_token_id = tokenizer.pad_token_id
        text_config = getattr(getattr(model, "config", None), "text_config", None)
        if text_config is not None:
            text_config.pad_token_id = tokenizer.pad_token_id


def image_token_count(processing_class: Any) -> int:
    """How many tokens one image becomes once a processor expands its placeholder (LLaVA-1.5: 576); 0 for a
    plain tokenizer. Measured by encoding one blank image at the processor's own input size, so it holds for
    any processor with a fixed image size (one whose count depends on the image's size gives its default)."""
    image_token = getattr(processing_class, "image_token", None)
    image_processor = getattr(processing_class, "image_processor", None)
    if image_token is None or image_processor is None:
        return 0
    from PIL import Image

    size = getattr(image_processor, "crop_size", None) or getattr(image_processor, "size", None) or {}
    side = size.get("shortest_edge") or size.get("longest_edge") or 336  # (a SizeDict holds None for unset keys)
    height, width = size.get("height") or side, size.get("width") or side
    encoded = processing_class(text=[image_token], images=[Image.new("RGB", (width, height))], return_tensors="pt")
    image_token_id = tokenizer_of(processing_class).convert_tokens_to_ids(image_token)
    return int((encoded["input_ids"] == image_token_id).sum())


def image_tokens_per_row(processing_class: Any, *datasets_: datasets.Dataset | None) -> int:
    """The most image tokens one row of the given datasets (None skipped) holds: its most images times
    ``image_token_count``. What a trainer adds to ``max_length`` so no row is cut inside an image."""
    most = max((most_images_per_row(dataset) for dataset in datasets_ if dataset is not None), default=0)
    return most * image_token_count(processing_class) if most else 0


def most_images_per_row(dataset: datasets.Dataset) -> int:
    """The most images one row of ``dataset`` holds (0 without an ``images`` column), read from Arrow: no image
    is decoded."""
    import pyarrow.compute as pc

    if not len(dataset) or "images" not in dataset.column_names:
        return 0
    return pc.max(pc.list_value_length(dataset.data.column("images"))).as_py() or 0


# Weights are loaded in fp32 for training whatever dtype a checkpoint was saved in (transformers 5 loads in
# the saved dtype by default): an optimizer stepping bf16 weights rounds updates of lr 1e-6 away. On a GPU
# bf16 speed comes from autocast (mixed precision), which keeps these fp32 master weights.
TRAINING_DTYPE = torch.float32


def run_trainer(
    *,
    trainer: Trainer,
    output_dir: Path,
    hooks: RunHooks | None,
    resume: bool,
    merge_lora: bool = True,
    model_info: dict[str, Any] | None = None,
    freeze_vision: str = "none",
) -> TrainResult:
    """Train with ``hooks`` attached, resuming from the last checkpoint if asked, and save the final model.

    Checkpoints go to ``trainer.args.output_dir`` (``output_dir / "checkpoints"`` by convention). On completion
    the model is evaluated once more on the eval set (unless the last step just was) and saved with its
    tokenizer or processor to ``output_dir``; a LoRA model is merged first unless ``merge_lora`` is off, in
    which case ``output_dir`` holds the adapter alone (see ``save_final_model``). ``model_info`` is written
    beside the model as ``loupe_model.json`` (see ``read_model_info``).
    """
    hooks = hooks or NullHooks()
    frozen = vision_parts_freeze(trainer.model, freeze_vision)
    if frozen:
        hooks.on_log_line(f"frozen ({freeze_vision}): {frozen:,} parameters of the vision tower/projector")
    callback = HooksCallback(hooks)
    trainer.add_callback(callback)
    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout; the hooks get them instead
    checkpoint = None
    if resume:
        checkpoints_dir = Path(trainer.args.output_dir)
        if trainer.is_world_process_zero():
            for name in discard_incomplete_checkpoints(checkpoints_dir):
                hooks.on_log_line(DISCARDED_LINE.format(name))
        last = last_complete_checkpoint(checkpoints_dir)
        checkpoint = str(last) if last else None
        hooks.on_log_line(f"resuming from {checkpoint}" if checkpoint else "no checkpoint to resume: starting over")
    train_output = trainer.train(resume_from_checkpoint=checkpoint)
    steps = trainer.state.global_step
    eval_metrics: dict[str, float] = {}
    if not callback.stopped_early:
        # From the trainer's own log, which every process keeps alike (the callback's history is the main one's).
        evaluated_last = any(
            h.get("step") == steps and any(k.startswith("eval_") for k in h) for h in trainer.state.log_history
        )
        if trainer.eval_dataset is not None and not evaluated_last:
            eval_metrics = trainer.evaluate()  # logged through the callback like any evaluation
        save_final_model(trainer=trainer, output_dir=output_dir, merge_lora=merge_lora, model_info=model_info)
        hooks.on_log_line(f"saved the model after {steps} steps to {output_dir}")
    last = next((h for h in reversed(callback.history) if "loss" in h), {})
    last_eval = next((h for h in reversed(callback.history) if any(k.startswith("eval_") for k in h)), {})
    metrics = {
        **last,
        **{k: v for k, v in last_eval.items() if k.startswith("eval_")},
        **{k: float(v) for k, v in eval_metrics.items() if isinstance(v, int | float)},
        **{k: float(v) for k, v in train_output.metrics.items() if isinstance(v, int | float)},
    }
    return TrainResult(
        output_dir=Path(output_dir),
        steps=steps,
        metrics=metrics,
        stopped_early=callback.stopped_early,
        history=callback.history,
    )


def vision_parts_freeze(model: torch.nn.Module, what: str) -> int:
    """Stop training a vision-language model's vision tower ("tower") or tower and projector
    ("tower_and_projector"); returns how many parameters were frozen (0 for "none", a text model, or a
    LoRA model, whose base weights are frozen already). Called before the trainer builds its optimizer,
    which takes only the parameters that still require gradients."""
    if what == "none" or hasattr(model, "peft_config"):
        return 0
    inner = getattr(model, "model", None)
    parts = [getattr(inner, "vision_tower", None)]
    if what == "tower_and_projector":
        parts.append(getattr(inner, "multi_modal_projector", None))
    frozen = 0
    for part in parts:
        if part is None:
            continue
        for parameter in part.parameters():
            if parameter.requires_grad:
                parameter.requires_grad_(False)
                frozen += parameter.numel()
    return frozen


MODEL_INFO_FILE = "loupe_model.json"


def save_final_model(
    *, trainer: Trainer, output_dir: Path, merge_lora: bool = True, model_info: dict[str, Any] | None = None
) -> None:
    """Save the trained model with its processing class, and ``model_info`` as ``loupe_model.json``.

    A peft model is merged into its base weights (a plain model any ``from_pretrained`` loads) unless
    ``merge_lora`` is off; then only the adapter is written (``adapter_config.json`` names the base), to be
    merged later by ``training.methods.lora.merge_adapter``.
    """
    if not trainer.accelerator.is_main_process:
        return
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model = trainer.accelerator.unwrap_model(trainer.model)
    is_adapter = hasattr(model, "merge_and_unload") and not merge_lora
    if hasattr(model, "merge_and_unload") and merge_lora:  # a peft model
        model = model.merge_and_unload()
    model.save_pretrained(output_dir)
    if trainer.processing_class is not None:
        trainer.processing_class.save_pretrained(output_dir)
    write_model_info(output_dir, {**(model_info or {}), "is_adapter": is_adapter})


def write_model_info(model_dir: Path, info: dict[str, Any]) -> None:
    """Record what Loupe needs to know about a saved model beside it (kind, answer prefix, ...)."""
    (Path(model_dir) / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")


def read_model_info(model_dir: str | Path) -> dict[str, Any]:
    """What ``write_model_info`` recorded for a model folder; ``{}`` for a hub name or a foreign folder.

    Keys: ``kind`` ("policy" or "reward"), ``answer_prefix`` (text generation puts before each answer, e.g.
    a control-token SFT model's good token), ``chat_template`` (whether a reward model scores chat-rendered
    text), ``is_adapter``.
    """
    path = Path(model_dir) / MODEL_INFO_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------------------
# Rendering a prompt (and answer) the way every method sees it


def conversation(prompt: str | list[dict], answer: str | None = None, *, with_image: bool) -> list[dict]:
    """A prompt (and optional answer) as chat messages; with an image, the user turn starts with its
    placeholder, as trl's trainers place it."""
    if isinstance(prompt, list):
        messages = [dict(m) for m in prompt]
    else:
        content: str | list[dict] = prompt
        if with_image:
            content = [{"type": "image"}, {"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def render_text(
    processing_class: Any,
    *,
    prompt: str | list[dict],
    answer: str | None,
    with_image: bool,
    use_template: bool,
) -> str:
    """The text a model reads for ``prompt`` (+ ``answer``): rendered with the chat template when asked or
    when there is an image (the template places its token), else the plain concatenation as trl makes it.
    With no answer the text ends where the model starts answering."""
    if use_template or with_image or isinstance(prompt, list):
        messages = conversation(prompt, answer, with_image=with_image)
        return processing_class.apply_chat_template(messages, tokenize=False, add_generation_prompt=answer is None)
    return prompt + (answer or "")


def has_chat_template(processing_class: Any) -> bool:
    return getattr(processing_class, "chat_template", None) is not None


# --------------------------------------------------------------------------------------------------------------
# Preference data


def load_preference_dataset(path: Path | str) -> datasets.Dataset:
    """Read preference rows ``{"prompt", "chosen", "rejected", optional "images", ...}`` into a Dataset.

    ``path`` is a JSONL file (one object per line; image paths relative to the file), a Parquet file (image
    columns as paths relative to the file, or as ``{"bytes", "path"}`` structs) or a directory written by
    ``Dataset.save_to_disk``. Prompts and answers may be strings or conversations (lists of messages). An
    ``images`` column is cast to images, so rows yield PIL images. Extra columns (``chosen_spans``, ...) stay.
    """
    path = Path(path)
    if path.is_dir():
        dataset = datasets.load_from_disk(str(path))
    elif path.suffix == ".parquet":
        dataset = datasets.Dataset.from_parquet(str(path))
    elif path.suffix in (".jsonl", ".json"):
        dataset = datasets.Dataset.from_list(_read_jsonl(path))
    else:
        raise ValueError(f"{path}: expected a .jsonl or .parquet file or a save_to_disk directory")
    missing = [c for c in PREFERENCE_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{path}: preference data needs the columns {missing}")
    if len(dataset) == 0:
        raise ValueError(f"{path}: no rows")
    if "images" in dataset.column_names and most_images_per_row(dataset) == 0:
        # Text-only rows of a format that always writes the column (dense-jsonl's `"images": []`): trl takes any
        # `images` column as vision data and refuses a text model, so an empty one is no column at all.
        dataset = dataset.remove_columns("images")
    if "images" in dataset.column_names:
        dataset = _cast_images(dataset, base_dir=path if path.is_dir() else path.parent)
    return dataset


def load_prompt_dataset(path: Path | str) -> datasets.Dataset:
    """The ``prompt`` (and ``images``) of any Loupe training file: preference rows or prompt/completion rows.

    Online methods and best-of-N only need prompts, so they read either kind of snapshot. Same file kinds
    and image handling as ``load_preference_dataset``; other columns are dropped.
    """
    path = Path(path)
    if path.suffix in (".jsonl", ".json"):
        rows = []
        with path.open(encoding="utf-8") as f:
            for line_number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}, line {line_number}: not JSON ({error.msg})") from error
                if not isinstance(row.get("prompt"), str | list):
                    raise ValueError(f"{path}, line {line_number}: 'prompt' must be text or a conversation")
                rows.append({"prompt": row["prompt"], **({"images": row["images"]} if row.get("images") else {})})
        if rows and any("images" in row for row in rows):
            rows = [{"images": [], **row} for row in rows]
        dataset = datasets.Dataset.from_list(rows)
    elif path.is_dir() or path.suffix == ".parquet":
        dataset = datasets.load_from_disk(str(path)) if path.is_dir() else datasets.Dataset.from_parquet(str(path))
        dataset = dataset.select_columns([c for c in ("prompt", "images") if c in dataset.column_names])
    else:
        raise ValueError(f"{path}: expected a .jsonl or .parquet file or a save_to_disk directory")
    if len(dataset) == 0 or "prompt" not in dataset.column_names:
        raise ValueError(f"{path}: no prompts")
    if "images" in dataset.column_names:
        dataset = _cast_images(dataset, base_dir=path if path.is_dir() else path.parent)
    return dataset


def first_row(path: Path | str) -> dict[str, Any]:
    """The first row of a JSONL training file (to tell preference rows from prompt/completion rows)."""
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                return json.loads(line)
    return {}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {line_number}: not JSON ({error.msg})") from error
            for column in PREFERENCE_COLUMNS:
                if not isinstance(row.get(column), str | list):
                    raise ValueError(f"{path}, line {line_number}: {column!r} must be text or a conversation")
            rows.append(row)
    return rows


def _cast_images(dataset: datasets.Dataset, *, base_dir: Path) -> datasets.Dataset:
    """Make the ``images`` column an image list, reading relative paths from ``base_dir``."""
    if isinstance(getattr(dataset.features["images"], "feature", None), datasets.Image):
        return dataset  # already images (a save_to_disk directory, or Parquet written with features)

    def absolute(image: str | dict) -> str | dict:
        if isinstance(image, str):
            return str((base_dir / image).resolve())
        if image.get("bytes") is None and image.get("path"):  # a {"bytes", "path"} struct holding a path only
            return {"bytes": None, "path": str((base_dir / image["path"]).resolve())}
        return image

    dataset = dataset.map(
        lambda images: {"images": [absolute(image) for image in images]},
        input_columns=["images"],
        desc="Resolving image paths",
    )
    return dataset.cast_column("images", datasets.List(datasets.Image()))


# --------------------------------------------------------------------------------------------------------------
# Per-token log-probabilities


def gather_token_logps(logits: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = -100) -> torch.Tensor:
    """Log-probability of each next token under a causal LM's logits.

    logits: (B, L, V) for positions 0..L-1; labels: (B, L), ``ignore_index`` where nothing is scored.
    Returns (B, L-1): entry t is log p(labels[t+1] | tokens <= t), 0 where the label is ignored.
    """
    logits = logits[:, :-1].float()  # (B, L-1, V): position t predicts token t+1
    labels = labels[:, 1:]  # (B, L-1)
    mask = labels != ignore_index
    logps = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return logps * mask


def completion_token_logps(
    model: torch.nn.Module,
    *,
    input_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    fused_lm_head: bool = False,
    **model_kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs of the completion tokens of a batch, and where they are.

    input_ids, completion_mask: (B, L); completion_mask is 1 on completion tokens. ``model_kwargs`` carries the
    attention mask and any image inputs. With ``fused_lm_head`` (a model patched by trl's
    ``add_fused_lm_head``) the (B, L, V) logits are never built. Returns ``(logps, mask)``, both (B, L-1),
    aligned so that entry t scores token t+1.
    """
    labels = input_ids.masked_fill(completion_mask == 0, -100)
    shift_mask = completion_mask[:, 1:]
    if fused_lm_head:
        outputs = model(input_ids=input_ids, labels=labels, fused_lm_head=True, use_cache=False, **model_kwargs)
        # Prompt-learning adapters prepend virtual tokens; the real tokens are the last L-1 positions.
        logps = outputs.log_probs[:, -shift_mask.size(1) :]
    else:
        logits = model(input_ids=input_ids, use_cache=False, **model_kwargs).logits
        logps = gather_token_logps(logits[:, -input_ids.size(1) :], labels)
    return logps, shift_mask


def message_text(answer: str | list[dict]) -> str:
    """The text of an answer: the string itself, or the text of a conversation's last message."""
    if isinstance(answer, str):
        return answer
    content = answer[-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content if part.get("type") == "text")


def row_images(row: dict[str, Any]) -> list:
    """The images of a dataset row (an ``images`` list or a single ``image``), possibly empty."""
    images = row.get("images")
    if images is None and row.get("image") is not None:
        images = [row["image"]]
    return list(images or [])


def encode_texts(
    processing_class: Any, *, texts: list[str], images: list[list] | None, max_length: int | None = None
) -> dict[str, torch.Tensor]:
    """Tokenize rendered texts (and their images, through the processor) into one padded batch.

    Text-only batches are cut to ``max_length`` tokens; batches with images are not (cutting could drop
    image placeholders the vision features must match).
    """
    if images is not None and any(images):
        return dict(processing_class(text=texts, images=images, return_tensors="pt", padding=True))
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    return dict(
        tokenizer(
            texts,
            add_special_tokens=False,  # the chat template (or the raw text) already holds what the model needs
            padding=True,
            truncation=max_length is not None,
            max_length=max_length,
            return_tensors="pt",
        )
    )
