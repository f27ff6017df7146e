"""Best-of-N: sample N answers per prompt and keep the one a reward model (or the labeler's score) likes best.

At inference it is the cheapest way to turn a reward model into better answers (Nakano et al., 2021, "WebGPT";
Stiennon et al., 2020); over a snapshot's prompts it writes the next round's SFT data: one
``{"prompt", "completion", "images", "score", "candidates"}`` row per prompt, which an SFT run reads through
its ``sft_data`` setting. ``best_of_n`` is the in-memory function; ``run_best_of_n`` is the platform's run
(progress hooks, cancel, resume by skipping prompts already written).

Under several processes (``LOUPE_TRAIN_LAUNCHER``, ``accelerate launch``) each process samples its own share
of every step's prompts on its own device (``process_share``), and the main process writes the step's
results, gathered from all, in prompt order: the file is always the first k prompts, whatever the number of
processes, so a run resumes under another process count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from training.core import (
    NullHooks,
    RunHooks,
    TrainResult,
    agree_to_stop,
    has_chat_template,
    is_vision_model,
)
from training.generation import answer_prefix_of, load_policy, sample_answers
from training.methods.configs import BestOfNConfig
from training.methods.ppo import prompt_rows
from training.rewards import RewardScorer, load_reward_scorer

__all__ = ["BestOfNConfig", "BestOfNResult", "best_of_n", "process_share", "run_best_of_n"]

RESULTS_FILE = "best.jsonl"


@dataclass
class BestOfNResult:
    """One prompt's candidates, their scores, and the best of them."""

    prompt: str | list[dict]
    candidates: list[str]
    scores: list[float]
    images: list[Any] = field(default_factory=list)

    @property
    def best_index(self) -> int:
        return max(range(len(self.scores)), key=lambda i: self.scores[i])

    @property
    def best(self) -> str:
        return self.candidates[self.best_index]

    @property
    def best_score(self) -> float:
        return self.scores[self.best_index]


def best_of_n(
    model: torch.nn.Module,
    processing_class: Any,
    *,
    scorer: RewardScorer,
    prompts: Sequence[str | list[dict]],
    images: Sequence[list] | None = None,
    n: int = 4,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    top_p: float = 1.0,
    answer_prefix: str = "",
    use_template: bool = True,
) -> list[BestOfNResult]:
    """Sample ``n`` answers for each prompt (with its images, for a VLM) and score them all with ``scorer``."""
    candidates = sample_answers(
        model,
        processing_class,
        prompts=prompts,
        images=images,
        n=n,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        answer_prefix=answer_prefix,
        use_template=use_template,
    )
    flat_prompts = [p for p in prompts for _ in range(n)]
    flat_answers = [a for answers in candidates for a in answers]
    flat_images = [list(i) for i in images for _ in range(n)] if images is not None else None
    scores = scorer(prompts=flat_prompts, completions=flat_answers, images=flat_images)
    return [
        BestOfNResult(
            prompt=prompt,
            candidates=answers,
            scores=list(scores[i * n : (i + 1) * n]),
            images=list(images[i]) if images is not None else [],
        )
        for i, (prompt, answers) in enumerate(zip(prompts, candidates, strict=True))
    ]


def process_share(*, start: int, batch_size: int, n_rows: int, num_processes: int, process_index: int) -> range:
    """The rows process ``process_index`` samples at the step that starts at row ``start``.

    A step covers the ``batch_size * num_processes`` rows from ``start`` on (fewer at the end); each process
    takes ``batch_size`` consecutive ones in process order, so concatenating the processes' results in
    process order gives the step's rows in prompt order. A process may get none at the last step."""
    first = min(start + process_index * batch_size, n_rows)
    return range(first, min(first + batch_size, n_rows))


def _prompts_for(config: BestOfNConfig, train_path: Path, eval_path: Path | None) -> list[dict[str, Any]]:
    paths = {"train": [train_path], "test": [eval_path], "all": [train_path, eval_path]}[config.split]
    rows = [row for path in paths if path is not None for row in prompt_rows(path)]
    return rows[: config.max_prompts] if config.max_prompts is not None else rows


def run_best_of_n(
    *,
    config: BestOfNConfig,
    train_path: Path,
    base_model: str,
    output_dir: Path,
    eval_path: Path | None = None,
    hooks: RunHooks | None = None,
    resume: bool = False,
) -> TrainResult:
    """Best-of-N over the prompts of a snapshot split, written to ``output_dir/best.jsonl``.

    Each batch of prompts (``batch_size`` per process) is one "step" for progress, with metrics
    ``best_score`` (mean over the batch), ``mean_score`` (mean of all candidates) and ``gain`` (their
    difference). A stop request ends after the current batch; resuming skips the prompts already written.
    Under several processes the prompts are shared out (``process_share``) and only the main process writes
    and reports.
    """
    hooks = hooks or NullHooks()
    accelerator = Accelerator()  # the processes, the device; only the main process writes
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results_path = output_dir / RESULTS_FILE
    rows = _prompts_for(config, train_path, eval_path)
    done = 0
    if resume and results_path.is_file():
        done, whole_bytes = _whole_rows(results_path)
        if whole_bytes < results_path.stat().st_size and accelerator.is_main_process:
            # A kill in the middle of a write leaves a row cut short; the next one would be appended to it.
            with results_path.open("r+b") as handle:
                handle.truncate(whole_bytes)
            hooks.on_log_line(f"removed a row cut short at the end of {results_path.name}")
        hooks.on_log_line(f"resuming after the {done} prompts already in {results_path}")
    elif results_path.exists() and accelerator.is_main_process:
        results_path.unlink()
    accelerator.wait_for_everyone()  # every process has read the file (or seen it gone) before the main one writes
    model, processing_class = load_policy(base_model, device=accelerator.device)
    vision = is_vision_model(base_model)
    use_template = has_chat_template(processing_class)
    prefix = config.answer_prefix if config.answer_prefix is not None else answer_prefix_of(base_model)
    scorer = load_reward_scorer(
        reward_model=config.reward_model, reward_function=config.reward_function, device=accelerator.device
    )
    per_step = config.batch_size * accelerator.num_processes
    starts = range(done, len(rows), per_step)
    steps = done // per_step
    total_steps = steps + len(starts)
    metrics: dict[str, float] = {}
    history: list[dict[str, float]] = []
    stopped_early = False
    where = f" on {accelerator.num_processes} processes" if accelerator.num_processes > 1 else ""
    hooks.on_log_line(f"best-of-{config.n} over {len(rows)} prompts with {base_model}{where}")
    for start in starts:
        share = process_share(
            start=start,
            batch_size=config.batch_size,
            n_rows=len(rows),
            num_processes=accelerator.num_processes,
            process_index=accelerator.process_index,
        )
        records = []
        if share:
            batch = [rows[i] for i in share]
            images = [row["images"] for row in batch] if vision and any(row["images"] for row in batch) else None
            torch.manual_seed(config.seed * 1_000_003 + share.start)  # the same prompts, the same samples on resume
            results = best_of_n(
                model,
                processing_class,
                scorer=scorer,
                prompts=[row["prompt"] for row in batch],
                images=images,
                n=config.n,
                max_new_tokens=config.max_completion_length,
                temperature=config.temperature,
                top_p=config.top_p,
                answer_prefix=prefix,
                use_template=use_template,
            )
            records = [_record(result) for result in results]
        records = gather_object(records)  # every process's, in process order: the step's prompts in order
        if accelerator.is_main_process:
            with results_path.open("a", encoding="utf-8") as handle:
                handle.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        steps += 1
        best = [record["score"] for record in records]
        every = [c["score"] for record in records for c in record["candidates"]]
        metrics = {"best_score": sum(best) / len(best), "mean_score": sum(every) / len(every)}
        metrics["gain"] = metrics["best_score"] - metrics["mean_score"]
        history.append({"step": float(steps), **metrics})
        if accelerator.is_main_process:
            hooks.on_step(steps, total_steps, metrics)
            hooks.on_log_line(f"step {steps}/{total_steps}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        if steps < total_steps and agree_to_stop(accelerator.is_main_process and hooks.should_stop()):
            stopped_early = True
            hooks.on_log_line(f"stop requested: {start + len(records)} prompts written, stopping")
            break
    accelerator.wait_for_everyone()  # the file is complete when any process returns
    if not stopped_early:
        hooks.on_log_line(f"wrote {len(rows)} best answers to {results_path}")
    return TrainResult(
        output_dir=output_dir, steps=steps, metrics=metrics, stopped_early=stopped_early, history=history
    )


def _whole_rows(path: Path) -> tuple[int, int]:
    """How many rows of ``path`` were written whole (a JSON line ending in a newline) before the first that was not,
    and the bytes they take."""
    rows = size = 0
    with path.open("rb") as handle:
        for line in handle:
            try:
                whole = line.endswith(b"\n") and isinstance(json.loads(line), dict)
            except ValueError:
                whole = False
            if not whole:
                break
            rows, size = rows + 1, size + len(line)
    return rows, size


def _record(result: BestOfNResult) -> dict[str, Any]:
    """A ``best.jsonl`` row: the best answer as an SFT completion, with every candidate and its score."""
    record: dict[str, Any] = {
        "prompt": result.prompt,
        "completion": result.best,
        "score": result.best_score,
        "candidates": [{"text": t, "score": s} for t, s in zip(result.candidates, result.scores, strict=True)],
    }
    image_paths = [getattr(image, "filename", "") for image in result.images]
    if image_paths and all(image_paths):
        record["images"] = image_paths
    return record
