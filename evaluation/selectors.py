"""Reads for benchmark runs: lists, examples and the leaderboard (models x benchmarks, with lineage)."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from annotation.models import JobStatus
from evaluation.models import BenchmarkExample, BenchmarkRun

# The headline metric of each benchmark on the leaderboard, and whether lower is better.
HEADLINE: dict[str, tuple[str, bool]] = {
    "pope": ("f1", False),
    "chair": ("CHAIR_i", True),
    "captions": ("METEOR", False),
}


def benchmark_run_list() -> QuerySet[BenchmarkRun]:
    return BenchmarkRun.objects.select_related("model")


def benchmark_example_list(*, run: BenchmarkRun, hallucinated: bool | None = None) -> QuerySet[BenchmarkExample]:
    examples = BenchmarkExample.objects.filter(run=run)
    if hallucinated is not None:
        examples = examples.filter(hallucinated=hallucinated)
    return examples


def headline_metrics(*, run: BenchmarkRun) -> dict[str, float]:
    """The numbers a leaderboard cell shows: POPE's F1/accuracy/yes-ratio averaged over settings, else the summary."""
    if run.benchmark != "pope":
        return {k: v for k, v in run.summary.items() if isinstance(v, int | float)}
    settings = [v for v in run.summary.values() if isinstance(v, dict)]
    if not settings:
        return {}
    out = {k: sum(s[k] for s in settings) / len(settings) for k in ("accuracy", "f1", "yes_ratio")}
    out.update({f"f1_{name}": s["f1"] for name, s in run.summary.items() if isinstance(s, dict)})
    return out


def leaderboard() -> dict[str, Any]:
    """Each model's latest succeeded run per benchmark, with the model's lineage (base model, training run).

    Rows are models (a registered artifact, or a folder), oldest first (registered, or first run) so a base comes
    before what was trained from it; ``benchmarks`` lists the benchmarks any row has, with the headline metric of each.
    """
    rows: dict[str, dict[str, Any]] = {}
    runs = benchmark_run_list().select_related("model__base", "model__produced_by").filter(status=JobStatus.SUCCEEDED)
    for run in runs.order_by("created_at"):
        label = run.model_label
        # Registered models in the order they were registered (a base before what was trained from it).
        since = run.model.created_at if run.model_id else run.created_at
        row = rows.setdefault(label, {"model": label, "lineage": _lineage(run), "results": {}, "first": since})
        row["results"][run.benchmark] = {"run": run.pk, "metrics": headline_metrics(run=run)}  # latest wins
    benchmarks = sorted({b for row in rows.values() for b in row["results"]})
    ordered = sorted(rows.values(), key=lambda r: r["first"])
    for row in ordered:
        del row["first"]
    return {
        "benchmarks": [
            {"name": b, "headline": HEADLINE.get(b, ("", False))[0], "lower_is_better": HEADLINE.get(b, ("", False))[1]}
            for b in benchmarks
        ],
        "rows": ordered,
    }


def _lineage(run: BenchmarkRun) -> dict[str, Any]:
    artifact = run.model
    if artifact is None:
        return {"artifact": None, "base": "", "training_run": None, "method": "", "snapshot": None}
    produced_by = artifact.produced_by
    return {
        "artifact": artifact.pk,
        "base": artifact.base.name if artifact.base_id else artifact.base_name,
        "training_run": artifact.produced_by_id,
        "method": produced_by.method if produced_by else "",
        "snapshot": artifact.snapshot_id,
    }


def summary_rows(*, run: BenchmarkRun) -> list[dict[str, Any]]:
    """The summary as table rows: one per POPE setting, or one row of the run's metrics."""
    if run.benchmark == "pope":
        return [{"name": name, **values} for name, values in run.summary.items() if isinstance(values, dict)]
    return [{"name": run.benchmark, **run.summary}] if run.summary else []


def benchmark_image_dir(*, run: BenchmarkRun) -> Path | None:
    """Where a POPE run's images are: its config's folder, or the shapes scenes it drew into its own folder."""
    if run.benchmark != "pope":
        return None
    if "shapes" in run.config:
        return Path(settings.DATA_DIR) / "benchmarks" / f"run-{run.pk}" / "images"
    return Path(run.config["images"]) if run.config.get("images") else None


def benchmark_example_image_path(*, run: BenchmarkRun, index: int) -> Path | None:
    """The image file of a run's example, or None (no image, or a name that leaves the images folder)."""
    folder = benchmark_image_dir(run=run)
    example = BenchmarkExample.objects.filter(run=run, index=index).first()
    if folder is None or example is None or not isinstance(example.input.get("image"), str):
        return None
    path = (folder / example.input["image"]).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        return None
    return path
