"""Does feedback collected in Loupe lower hallucination? The hallucination recipe over several seeds.

    .venv/bin/python bench/prove_loop.py                          # 3 seeds, --size full (about 8 min a seed)
    .venv/bin/python bench/prove_loop.py --seeds 0 --size small   # what the end-to-end test runs
    .venv/bin/python bench/prove_loop.py --reports var/recipes/hallucination-*/report.json   # tabulate again

Each seed runs `manage.py recipe hallucination` (evaluation/recipes/hallucination.py: an SFT'd tiny VLM with
eyes, its own answers corrected by simulated annotators through the annotation API, judged pairwise, labelled
by the AI labeler over two RLAIF-V rounds; DDPO and DPO runs; CHAIR and POPE benchmark runs on held-out
scenes) on a fresh database in `--data-dir` (the built base models are shared between seeds: they are the
pre-trained model every seed starts from). The models and benchmark runs stay there: point `LOUPE_DATA_DIR`
at it and `/leaderboard/` shows them.

Prints one JSON line per model and seed, one per model (mean and sample standard deviation over seeds), and a
summary last; writes `table.md` (model, feedback, annotated answers, CHAIR_s, CHAIR_i, POPE F1, each mean ±
sd) and `chair.svg` (CHAIR_i per model, each seed a dot) into `--out`. Not a test: nothing here asserts.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup(data_dir: Path) -> None:
    os.environ["LOUPE_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "loupe.settings.base"
    os.environ.setdefault("LOUPE_DEMO", "1")
    os.environ.setdefault("LOUPE_LOG_LEVEL", "WARNING")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def pope_f1(summary: dict | None) -> float | None:
    """POPE's F1 averaged over its settings (random, popular, adversarial)."""
    if not summary:
        return None
    scores = [value["f1"] for value in summary.values() if isinstance(value, dict) and "f1" in value]
    return sum(scores) / len(scores) if scores else None


def _per_answer(chair: dict, count: str) -> float | None:
    return chair[count] / chair["n_captions"] if chair.get("n_captions") else None


def model_rows(report: dict, seed: int) -> list[dict]:
    """One row per model of a recipe report: its feedback, answers annotated and headline metrics."""
    rows = []
    for model in report["results"]["models"]:
        chair = model.get("chair", {})
        rows.append(
            {
                "seed": seed,
                "label": model["label"],
                "model": model["model"],
                "feedback": model["feedback"],
                "answers": model["answers"],
                "CHAIR_s": chair.get("CHAIR_s"),
                "CHAIR_i": chair.get("CHAIR_i"),
                # CHAIR alone rewards a model that names nothing: these two say how much it still describes.
                "objects_per_answer": _per_answer(chair, "n_mentions"),
                "hallucinated_per_answer": _per_answer(chair, "n_hallucinated_mentions"),
                "pope_f1": pope_f1(model.get("pope")),
            }
        )
    return rows


METRICS = ("answers", "CHAIR_s", "CHAIR_i", "objects_per_answer", "hallucinated_per_answer", "pope_f1")


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(rows: list[dict]) -> list[dict]:
    """Per model label: mean and sample sd over seeds of each metric (and of the answers annotated)."""
    out = []
    for label in dict.fromkeys(row["label"] for row in rows):
        mine = [row for row in rows if row["label"] == label]
        entry = {"label": label, "feedback": mine[0]["feedback"], "seeds": len(mine)}
        for metric in METRICS:
            mean, sd = _mean_sd([row[metric] for row in mine])
            entry[metric], entry[f"{metric}_sd"] = mean, sd
            entry[f"{metric}_per_seed"] = [row[metric] for row in mine]
        out.append(entry)
    return out


def _cell(mean: float | None, sd: float | None, digits: int = 3) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def table_markdown(models: list[dict]) -> str:
    lines = [
        "| model | feedback | annotated answers | CHAIR_s ↓ | CHAIR_i ↓ | objects named per answer | hallucinated "
        "objects per answer ↓ | POPE F1 ↑ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in models:
        lines.append(
            f"| {m['label']} | {m['feedback']} | {m['answers']:.0f} | {_cell(m['CHAIR_s'], m['CHAIR_s_sd'])} | "
            f"{_cell(m['CHAIR_i'], m['CHAIR_i_sd'])} | "
            f"{_cell(m['objects_per_answer'], m['objects_per_answer_sd'], 2)} | "
            f"{_cell(m['hallucinated_per_answer'], m['hallucinated_per_answer_sd'])} | "
            f"{_cell(m['pope_f1'], m['pope_f1_sd'])} |"
        )
    return "\n".join(lines) + "\n"


def plot_svg(models: list[dict], *, metric: str = "CHAIR_i") -> str:
    """A dot plot: one row per model, each seed's value a dot, the mean a bar; lower is better."""
    from html import escape

    width, left, right, row_height, top = 760, 230, 30, 34, 40
    values = [v for m in models for v in m[f"{metric}_per_seed"] if v is not None] or [0.0]
    high = max(values) * 1.15 or 1.0
    height = top + row_height * len(models) + 40

    def x(value: float) -> float:
        return left + (width - left - right) * value / high

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="13"><rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="22" font-weight="bold">{escape(metric)} on held-out scenes (lower is better; '
        f"dots: seeds, bar: mean; dashed: the first model's mean)</text>",
    ]
    for tick in range(6):
        value = high * tick / 5
        parts.append(f'<line x1="{x(value):.1f}" x2="{x(value):.1f}" y1="{top - 6}" y2="{height - 30}" '
                     f'stroke="#ddd"/><text x="{x(value):.1f}" y="{height - 12}" text-anchor="middle" '
                     f'fill="#555">{value:.2f}</text>')  # fmt: skip
    if models and models[0][metric] is not None:  # the model feedback starts from, to compare each bar with
        parts.append(f'<line x1="{x(models[0][metric]):.1f}" x2="{x(models[0][metric]):.1f}" y1="{top - 6}" '
                     f'y2="{height - 30}" stroke="#d62728" stroke-dasharray="5,4"/>')  # fmt: skip
    for i, m in enumerate(models):
        y = top + row_height * i + row_height / 2
        parts.append(f'<text x="{left - 10}" y="{y + 4:.1f}" text-anchor="end">{escape(m["label"])}</text>')
        if m[metric] is not None:
            parts.append(f'<rect x="{left}" y="{y - 9:.1f}" width="{x(m[metric]) - left:.1f}" height="18" '
                         f'fill="#9ecae1"/>')  # fmt: skip
        for value in m[f"{metric}_per_seed"]:
            if value is not None:
                parts.append(f'<circle cx="{x(value):.1f}" cy="{y:.1f}" r="4" fill="#08519c"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", choices=["small", "full"], default="full")
    parser.add_argument("--data-dir", default="", help="Loupe's data folder for the runs (default: a new temp one)")
    parser.add_argument("--out", default=str(ROOT / "var" / "prove_loop"), help="where table.md and chair.svg go")
    parser.add_argument(
        "--reports", nargs="+", default=[], help="tabulate these recipe report.json files instead of running"
    )
    args = parser.parse_args()

    started = time.monotonic()
    rows: list[dict] = []
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="loupe-prove-loop-"))
    if args.reports:
        for path in args.reports:
            report = json.loads(Path(path).read_text(encoding="utf-8"))
            for row in model_rows(report, report["config"]["seed"]):
                print(json.dumps({"kind": "model_seed", **row, "seconds": report["seconds"]}))
                rows.append(row)
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        _setup(data_dir)
        from evaluation.recipes import recipe_config_build, recipe_run

    for seed in [] if args.reports else args.seeds:
        began = time.monotonic()
        config = recipe_config_build(size=args.size, seed=seed)
        _, report = recipe_run(name="hallucination", config=config, progress=lambda line: print(line, file=sys.stderr))
        for row in model_rows(report, seed):
            print(json.dumps({"kind": "model_seed", **row, "seconds": round(time.monotonic() - began, 1)}))
            rows.append(row)
    models = aggregate(rows)
    for m in models:
        print(json.dumps({"kind": "model", **m}))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table_markdown(models), encoding="utf-8")
    (out / "chair.svg").write_text(plot_svg(models), encoding="utf-8")
    sft = next(m for m in models if m["label"] == "SFT")
    print(
        json.dumps(
            {
                "kind": "summary",
                "size": args.size,
                "seeds": sorted({row["seed"] for row in rows}),
                "seconds": round(time.monotonic() - started, 1),
                "data_dir": str(data_dir),
                "table": str(out / "table.md"),
                "plot": str(out / "chair.svg"),
                # Per model: CHAIR_i after feedback minus the SFT model's (negative: fewer hallucinations).
                "chair_i_change": {
                    m["label"]: round(m["CHAIR_i"] - sft["CHAIR_i"], 4) for m in models if m["label"] != "SFT"
                },
            }
        )
    )


if __name__ == "__main__":
    main()
