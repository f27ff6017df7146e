"""Time per optimizer step of DPO and dense DPO (DDPO) on the same model and the same batch, and tokens/s.

DDPO (RLHF-V) reweights the tokens an annotator corrected; it diffs chosen/rejected token ids in the collator
and computes weighted log-probs itself, so its step should cost about what DPO's does (goal: ratio <= 1.1).
Both trainers are built on one model made here (Llama-family, random weights, the tiny models' tokenizer;
sizes below) and take their first batch of the same shapes-world pairs (with annotated spans for DDPO);
then each timed step is forward + backward + AdamW update on that batch, the methods' steps alternating so
that drift in machine load hits both alike, after ``--warmup`` untimed steps. Prints one JSON line per method
(median, mean and fastest seconds per step, tokens per second) and a summary line with the DDPO/DPO ratio of
the medians. It is never a test.

    .venv/bin/python bench/train_step.py                                   # "small" model, CPU or the GPU
    .venv/bin/python bench/train_step.py --size tiny --steps 40
    .venv/bin/python bench/train_step.py --size base --batch 16            # a GPU machine

Other methods (``--methods dpo,ddpo,sft,reward``) are timed the same way for comparison.
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


def _sync() -> None:
    """Wait for queued GPU work, so a step's time is the step's."""
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
        "activation_checkpointing": False,
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


def prepare(method: str, *, model_dir: Path, data: Path, work: Path, steps: int, batch: int):
    """A method's trainer with its optimizer, and its first batch (the same examples for every method)."""
    trainer = make_trainer(method, model_dir=model_dir, data=data, out=work / method, steps=steps, batch=batch)
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1  # what Trainer.train sets before its first step
    inputs = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    trainer.model.train()
    return trainer, inputs


def one_step(trainer, inputs) -> float:  # noqa: ANN001
    """Seconds for one optimizer step (forward, backward, AdamW update) on ``inputs``."""
    _sync()
    start = time.perf_counter()
    trainer.training_step(trainer.model, inputs)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad()
    _sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per method")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=8, help="preference pairs per step")
    parser.add_argument("--methods", default="dpo,ddpo")
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory(prefix="loupe-bench-") as tmp:
        work = Path(tmp)
        model_dir = build_model(size=args.size, out_dir=work / "model")
        data = write_pairs(path=work / "pairs.jsonl", n=max(64, args.batch * 4))
        from transformers import AutoModelForCausalLM

        n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters())
        methods = args.methods.split(",")
        prepared = {
            m: prepare(m, model_dir=model_dir, data=data, work=work, steps=args.warmup + args.steps, batch=args.batch)
            for m in methods
        }
        if "dpo" in prepared and "ddpo" in prepared:  # the same pairs, tokenized alike, in both batches
            assert torch.equal(prepared["dpo"][1]["input_ids"], prepared["ddpo"][1]["input_ids"])
        seconds: dict[str, list[float]] = {m: [] for m in methods}
        # Steps alternate between the methods, so drift in machine load hits them alike.
        for index in range(args.warmup + args.steps):
            for method in methods if index % 2 == 0 else reversed(methods):
                elapsed = one_step(*prepared[method])
                if index >= args.warmup:
                    seconds[method].append(elapsed)
        results: dict[str, dict] = {}
        for method in methods:
            trainer, inputs = prepared[method]
            tokens = int(inputs["attention_mask"].sum())
            timed = seconds[method]
            results[method] = {
                "method": method,
                "size": args.size,
                "parameters": n_params,
                "device": str(trainer.args.device),
                "torch_threads": torch.get_num_threads(),
                "batch_pairs": args.batch,
                "tokens_per_step": tokens,
                "steps_timed": len(timed),
                "median_s_per_step": round(statistics.median(timed), 5),
                "mean_s_per_step": round(statistics.fmean(timed), 5),
                "min_s_per_step": round(min(timed), 5),
                "tokens_per_second": round(tokens / statistics.median(timed), 1),
            }
            print(json.dumps(results[method]), flush=True)
    best = {m: r["median_s_per_step"] for m, r in results.items()}
    summary = {
        "summary": True,
        "size": args.size,
        "parameters": n_params,
        "device": next(iter(results.values()))["device"],
        "cuda": torch.cuda.is_available(),
        "median_s_per_step": best,
        "tokens_per_second": {m: r["tokens_per_second"] for m, r in results.items()},
    }
    if "dpo" in best and "ddpo" in best:
        summary["ddpo_over_dpo"] = round(best["ddpo"] / best["dpo"], 3)
        summary["goal"] = "ddpo_over_dpo <= 1.1"
        summary["meets_goal"] = summary["ddpo_over_dpo"] <= 1.1
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
