"""Time per optimizer step of DPO and dense DPO (DDPO) on the same model and the same batches, and tokens/s.

DDPO (RLHF-V) reweights the tokens an annotator corrected; it diffs chosen/rejected token ids in the collator
and computes weighted log-probs itself, so its step should cost about what DPO's does (goal: ratio <= 1.1).
Both trainers get one model built here (Llama-family, random weights, the tiny models' tokenizer; sizes
below), the same shapes-world preference rows with annotated spans, the same seed and so the same batches.
The first ``--warmup`` steps of each run are not timed. Prints one JSON line per method (median and mean
seconds per step, tokens per second) and a summary line with the DDPO/DPO ratio. It is never a test.

    .venv/bin/python bench/train_step.py                                   # "small" model, CPU or the GPU
    .venv/bin/python bench/train_step.py --size tiny --steps 20 --batch 4
    .venv/bin/python bench/train_step.py --size base --device cuda         # a GPU machine

Extra methods (``--methods dpo,ddpo,sft,reward``) are timed the same way for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIZES = {  # hidden size, layers, heads, intermediate size
    "tiny": (64, 2, 4, 128),
    "small": (256, 4, 8, 1024),
    "base": (768, 12, 12, 3072),
}


def build_model(*, size: str, out_dir: Path) -> Path:
    """A Llama causal LM of ``size`` with random weights and the tiny models' tokenizer, saved to ``out_dir``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.tiny_models import make_tiny_tokenizer

    hidden, layers, heads, intermediate = SIZES[size]
    tokenizer = make_tiny_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def write_pairs(*, path: Path, n: int) -> Path:
    """Shapes-world pairs: chosen = true caption, rejected = hallucinated one with its wrong spans marked."""
    from annotation.shapes_world import shapes_world_items

    items = shapes_world_items(n=n, seed=9, image_dir=path.parent / "images")
    with path.open("w") as f:
        for item in items:
            truth, wrong = item["responses"]
            row = {"prompt": item["prompt"], "chosen": truth["text"], "rejected": wrong["text"]}
            row["rejected_spans"] = item["meta"]["hallucinated_spans"]
            f.write(json.dumps(row) + "\n")
    return path


class StepTimer:
    """A trainer callback recording each optimizer step's wall time and the trainer's token count."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def callback(self):
        from transformers import TrainerCallback

        timer = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer._sync()
                timer._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer._sync()
                timer.seconds.append(time.perf_counter() - timer._start)

        return _Callback()

    @staticmethod
    def _sync() -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def make_trainer(method: str, *, model_dir: Path, data: Path, out: Path, steps: int, batch: int):
    from training.methods.configs import BAD_TOKEN, GOOD_TOKEN, DDPOConfig, DPOConfig, RewardConfig, SFTConfig

    common = {
        "max_steps": steps,
        "per_device_train_batch_size": batch,
        "save_steps": 10**6,
        "logging_steps": 1,
        "seed": 0,
        "lr_scheduler_type": "constant",
        "gradient_checkpointing": False,
    }
    if method in ("dpo", "ddpo"):
        from trl import DPOTrainer

        from training.methods.ddpo import DDPOTrainer
        from training.methods.dpo import make_preference_trainer

        config = DDPOConfig(**common) if method == "ddpo" else DPOConfig(**common)
        extra = {"gamma": config.gamma, "min_match_tokens": config.min_match_tokens} if method == "ddpo" else {}
        return make_preference_trainer(
            trainer_class=DDPOTrainer if method == "ddpo" else DPOTrainer,
            config=config,
            train_path=data,
            base_model=str(model_dir),
            output_dir=out,
            eval_path=None,
            **extra,
        )
    if method == "sft":
        from trl import SFTTrainer

        from training.core import load_preference_dataset, load_processing_class
        from training.methods.sft import _as_dataset, sft_rows_from_preferences

        config = SFTConfig(**common)
        rows = sft_rows_from_preferences(
            load_preference_dataset(data), control_tokens=False, good_token=GOOD_TOKEN, bad_token=BAD_TOKEN
        )
        return SFTTrainer(
            model=str(model_dir),
            args=config.trl_args(output_dir=out, with_eval=False),
            train_dataset=_as_dataset(rows, chat=True),
            processing_class=load_processing_class(model_dir),
        )
    if method == "reward":
        from training.core import load_preference_dataset, load_processing_class
        from training.methods.reward import BradleyTerryTrainer, PairCollator, _new_reward_model

        config = RewardConfig(**common)
        processing_class = load_processing_class(model_dir)
        return BradleyTerryTrainer(
            model=_new_reward_model(str(model_dir), processing_class),
            args=config.trl_args(output_dir=out, with_eval=False),
            train_dataset=load_preference_dataset(data),
            data_collator=PairCollator(processing_class, use_template=True, max_length=config.max_length),
            processing_class=processing_class,
        )
    raise SystemExit(f"unknown method {method!r}")


def time_method(method: str, *, model_dir: Path, data: Path, work: Path, steps: int, warmup: int, batch: int) -> dict:
    import torch

    trainer = make_trainer(method, model_dir=model_dir, data=data, out=work / method, steps=warmup + steps, batch=batch)
    timer = StepTimer()
    trainer.add_callback(timer.callback())
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    tokens_seen: list[float] = []
    original_log = trainer.log

    def log(logs, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        original_log(logs, *args, **kwargs)
        if "num_tokens" in logs:
            tokens_seen.append(float(logs["num_tokens"]))

    trainer.log = log
    trainer.train()
    timed = timer.seconds[warmup:]
    tokens_per_step = (tokens_seen[-1] - tokens_seen[warmup - 1]) / len(timed) if len(tokens_seen) > warmup else None
    row = {
        "method": method,
        "device": str(trainer.args.device),
        "steps_timed": len(timed),
        "batch_pairs": batch,
        "median_s_per_step": round(statistics.median(timed), 5),
        "mean_s_per_step": round(statistics.fmean(timed), 5),
        "tokens_per_step": round(tokens_per_step, 1) if tokens_per_step else None,
        "tokens_per_second": round(tokens_per_step / statistics.fmean(timed), 1) if tokens_per_step else None,
        "torch_threads": torch.get_num_threads(),
    }
    del trainer
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per method")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=8, help="preference pairs per step")
    parser.add_argument("--methods", default="dpo,ddpo")
    parser.add_argument("--rounds", type=int, default=2, help="alternate the methods this many times")
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory(prefix="loupe-bench-") as tmp:
        work = Path(tmp)
        model_dir = build_model(size=args.size, out_dir=work / "model")
        data = write_pairs(path=work / "pairs.jsonl", n=max(64, args.batch * 4))
        n_params = sum(p.numel() for p in __import__("transformers").AutoModel.from_pretrained(model_dir).parameters())
        results: dict[str, list[dict]] = {}
        for round_index in range(args.rounds):  # alternate so drift in machine load hits both methods alike
            for method in args.methods.split(","):
                row = time_method(
                    method,
                    model_dir=model_dir,
                    data=data,
                    work=work / f"round-{round_index}",
                    steps=args.steps,
                    warmup=args.warmup,
                    batch=args.batch,
                )
                row.update({"round": round_index, "size": args.size, "parameters": n_params})
                results.setdefault(method, []).append(row)
                print(json.dumps(row), flush=True)
    best = {m: min(r["median_s_per_step"] for r in rows) for m, rows in results.items()}
    summary = {
        "summary": True,
        "size": args.size,
        "parameters": n_params,
        "device": results[next(iter(results))][0]["device"],
        "cuda": torch.cuda.is_available(),
        "best_median_s_per_step": best,
        "tokens_per_second": {m: max(r["tokens_per_second"] or 0 for r in rows) for m, rows in results.items()},
    }
    if "dpo" in best and "ddpo" in best:
        summary["ddpo_over_dpo"] = round(best["ddpo"] / best["dpo"], 3)
        summary["goal"] = "ddpo_over_dpo <= 1.1"
        summary["meets_goal"] = summary["ddpo_over_dpo"] <= 1.1
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
