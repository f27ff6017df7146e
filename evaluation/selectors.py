"""Reads for benchmark runs: lists, examples and the leaderboard (models x benchmarks, with lineage)."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from annotation.models import Correction, Item, JobStatus, PairwiseJudgment, Project, Rating, Response
from evaluation.models import BenchmarkExample, BenchmarkRun
from training.models import ModelArtifact

# The headline metric of each benchmark on the leaderboard, and whether lower is better.
HEADLINE: dict[str, tuple[str, bool]] = {
    "pope": ("f1", False),
    "chair": ("CHAIR_i", True),
    "captions": ("METEOR", False),
    "object_halbench": ("response_rate", True),
    "mmhal": ("score", False),
    "shr": ("shr", True),
    "human_eval": ("any", True),
    "humor": ("win_rate", False),
}
# Benchmarks whose one run rates several models (each model's numbers under summary["models"][name]).
PER_MODEL = ("human_eval", "humor")


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
        return _numbers(run.summary)
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
    artifacts = {a.name: a for a in ModelArtifact.objects.select_related("base", "produced_by")}
    runs = benchmark_run_list().select_related("model__base", "model__produced_by").filter(status=JobStatus.SUCCEEDED)
    for run in runs.order_by("created_at"):
        label = run.model_label
        # Registered models in the order they were registered (a base before what was trained from it).
        since = run.model.created_at if run.model_id else run.created_at
        if run.benchmark in PER_MODEL:  # one run, several models: each joins the row of its name
            for name, metrics in (run.summary.get("models") or {}).items():
                lineage = _lineage_of_name(name, artifacts)
                row = rows.setdefault(name, {"model": name, "lineage": lineage, "results": {}, "first": since})
                row["results"][run.benchmark] = {"run": run.pk, "metrics": _numbers(metrics)}
            continue
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


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _lineage_of_name(name: str, artifacts: dict[str, ModelArtifact]) -> dict[str, Any]:
    """The lineage of the registered model of that name (a human-rated model named as registered), else none."""
    return _lineage_of(artifacts.get(name))


def _lineage(run: BenchmarkRun) -> dict[str, Any]:
    return _lineage_of(run.model)


def _lineage_of(artifact: ModelArtifact | None) -> dict[str, Any]:
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
    if run.benchmark in PER_MODEL:
        return [{"name": name, **_numbers(values)} for name, values in (run.summary.get("models") or {}).items()]
    return [{"name": run.benchmark, **_numbers(run.summary)}] if run.summary else []


def benchmark_image_dir(*, run: BenchmarkRun) -> Path | None:
    """Where a run's images are: its config's folder, or the shapes scenes it drew into its own folder."""
    if "shapes" in run.config:
        return Path(settings.DATA_DIR) / "benchmarks" / f"run-{run.pk}" / "images"
    return Path(run.config["images"]) if isinstance(run.config.get("images"), str) else None


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


def correction_marks_by_model(*, project: Project) -> dict[str, list[list[str]]]:
    """Model -> one list of marked segment types per corrected answer of a correction project.

    An answer corrected by several people counts once, with every type anyone marked (a hallucination one
    person saw is a hallucination); an answer no one corrected is not judged and not counted.
    """
    marks: dict[int, list[str]] = {}
    models: dict[int, str] = {}
    corrections = Correction.objects.filter(item__project=project).values_list(
        "response_id", "response__model_name", "segments"
    )
    for response_id, model_name, segments in corrections.order_by("response_id", "id"):
        models[response_id] = model_name or "(unnamed model)"
        seen = marks.setdefault(response_id, [])
        seen.extend(str(segment.get("type", "other")) for segment in segments or [])
    out: dict[str, list[list[str]]] = {}
    for response_id, types in marks.items():
        out.setdefault(models[response_id], []).append(types)
    return out


def caption_mean(*, response: Response, scale: list[str]) -> float | None:
    """A caption's mean rating on its project's scale (level k is worth k + 1, unfunny = 1): from Loupe's own
    ratings and imported level counts together, else an imported summary's mean; None when never rated."""
    counts = {level: int(n) for level, n in (response.meta.get("rating_counts") or {}).items() if level in scale}
    for level in Rating.objects.filter(response=response).values_list("level", flat=True):
        if 0 <= level < len(scale):
            counts[scale[level]] = counts.get(scale[level], 0) + 1
    votes = sum(counts.values())
    if votes:
        return sum((scale.index(level) + 1) * n for level, n in counts.items()) / votes
    summary = response.meta.get("rating_summary")
    return float(summary["mean"]) if summary and "mean" in summary else None


def contest_top_captions(*, project: Project, top_k: int) -> list[tuple[Item, list[Response]]]:
    """Each contest (item) of a caption-contest project with its ``top_k`` best-rated human captions."""
    scale = list(project.rating_levels or [])
    out = []
    for item in Item.objects.filter(project=project).prefetch_related("responses").order_by("id"):
        rated = [(caption_mean(response=r, scale=scale), r.pk, r) for r in item.responses.all()]
        rated = sorted(((m, pk, r) for m, pk, r in rated if m is not None), key=lambda t: (-t[0], t[1]))
        if rated:
            out.append((item, [r for _, _, r in rated[:top_k]]))
    return out


def pairwise_outcomes(*, project: Project) -> list[tuple[str, str, str]]:
    """(model of response A, model of response B, choice) of every judgment of a pairwise project; a response
    without a model name is "human". Choices: "a", "b", "tie" or "both_bad"."""
    rows = PairwiseJudgment.objects.filter(item__project=project).order_by("id")
    return [
        (a or "human", b or "human", choice)
        for a, b, choice in rows.values_list("response_a__model_name", "response_b__model_name", "choice")
    ]
