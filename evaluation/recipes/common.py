"""What every recipe shares: its settings, the stages it records, the report it writes, and the few steps each
of them takes through the product (a project made by a researcher, simulated annotators answering through the
annotation API, a training run and a benchmark run started through their services and run to their end).

Training runs, labeler jobs and benchmark runs are started with their own start services (which validate and
queue them, as the API does) and then executed inline by calling the same execute function a worker would, as
`training.rounds` does: a recipe is sequential, and a task must never wait on other tasks (a single `--pool
solo` worker would wait on itself). A worker that takes a queued row first makes the inline call a no-op; the
recipe then waits on the row's status.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from loupe.errors import ApplicationError

SIZES = ("small", "full")
Progress = Callable[[str], None]


@dataclass
class RecipeConfig:
    """Settings every recipe takes (each field's help text is what `manage.py recipe --help` shows)."""

    size: str = field(
        default="small",
        metadata={"help": "'small': a few items and steps (minutes on a CPU, what the tests run); 'full': more."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the data drawn, the split and the training."})
    out_dir: str = field(
        default="", metadata={"help": "Folder the report goes in; default var/recipes/<recipe>-<time>."}
    )
    models_dir: str = field(
        default="",
        metadata={"help": "Where the tiny base models are built once and reused; default var/recipes/models."},
    )
    owner: str = field(default="", metadata={"help": "Username of the researcher who owns what the recipe makes."})

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}, not {self.size!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a whole number of at least 0, not {self.seed!r}")

    @property
    def small(self) -> bool:
        return self.size == "small"


def recipe_config_build(**values: Any) -> RecipeConfig:
    """A `RecipeConfig`, or ApplicationError naming the setting at fault."""
    try:
        return RecipeConfig(**values)
    except (TypeError, ValueError) as error:
        named = next((name for name in ("size", "seed") if str(error).startswith(name)), "config")
        raise ApplicationError(f"Invalid recipe settings: {error}", {"field": named}) from error


class RecipeFailed(Exception):
    """A stage could not finish: the message says which and why (it is what the report and the log record)."""


@dataclass
class RecipeContext:
    """One recipe run as it goes: its name and settings, where it writes, who acts, and the stages so far."""

    name: str
    config: RecipeConfig
    out_dir: Path
    owner: AbstractBaseUser
    progress: Progress
    stages: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def tag(self) -> str:
        """A short unique suffix for the slugs and names this run makes (so a recipe can run twice)."""
        name = self.out_dir.name.lower()
        stamp = name[len(self.name) + 1 :] if name.startswith(f"{self.name}-") else name
        return "".join(c if c.isalnum() else "-" for c in stamp)[-32:].strip("-") or "run"

    def stage(self, name: str, **facts: Any) -> dict[str, Any]:
        """Record a finished stage with what a user would look at (ids, counts, statuses, metrics)."""
        entry = {"stage": name, "seconds": round(time.monotonic() - self.started, 1), **facts}
        self.stages.append(entry)
        self.progress(f"[{self.name}] {name}: " + ", ".join(f"{k}={_short(v)}" for k, v in facts.items()))
        return entry


def unique_slug(base: str) -> str:
    """`base`, or `base-2`, `base-3`... when a project has it already (a recipe run again into one folder)."""
    from annotation.models import Project

    slug, number = base[:45], 1
    while Project.objects.filter(slug=slug).exists():
        number += 1
        slug = f"{base[:45]}-{number}"
    return slug


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 120 else text[:117] + "..."


def context_open(*, name: str, config: RecipeConfig, progress: Progress) -> RecipeContext:
    """The context of a new run: its report folder made, its owner found or created (staff: it starts runs)."""
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S-%f")
    out_dir = Path(config.out_dir) if config.out_dir else Path(settings.DATA_DIR) / "recipes" / f"{name}-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    users = get_user_model()
    if config.owner:
        owner = users.objects.filter(username=config.owner).first()
        if owner is None:
            raise ApplicationError(f"No user {config.owner!r}.", {"field": "owner"})
    else:
        # Staff, as whoever starts training and benchmark runs is; nobody logs in as it.
        owner, created = users.objects.get_or_create(
            username="recipe-researcher", defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            owner.set_unusable_password()
            owner.save(update_fields=["password"])
    return RecipeContext(name=name, config=config, out_dir=out_dir, owner=owner, progress=progress)


def models_root(context: RecipeContext) -> Path:
    return (
        Path(context.config.models_dir) if context.config.models_dir else Path(settings.DATA_DIR) / "recipes" / "models"
    )


def tiny_model(context: RecipeContext, *, kind: str) -> Path:
    """The tiny base model of `kind` (lm, vlm, reward), built once under the models folder (torch: worker side)."""
    from training.tiny_models import make_tiny_model

    folder = models_root(context) / f"tiny-{kind}"
    if not (folder / "config.json").is_file():
        make_tiny_model(kind=kind, out_dir=folder, seed=0)
    return folder


def _artifact_at(location: Path, *, reference: str, model_kind: str = "policy") -> Any:
    """The `ModelArtifact` registered at `location` (reused when one is), so the models a recipe trains have a
    lineage back to it."""
    from training.models import ModelArtifact
    from training.services import model_artifact_register, model_name_from_reference

    found = ModelArtifact.objects.filter(location=str(location), kind=model_kind, is_adapter=False).order_by("id")
    if (artifact := found.first()) is not None:
        return artifact
    name = model_name_from_reference(reference=reference)
    return model_artifact_register(name=name, location=str(location), kind=model_kind)


def base_artifact(context: RecipeContext, *, kind: str, model_kind: str = "policy") -> Any:
    """The tiny base model of `kind` registered as a `ModelArtifact`."""
    return _artifact_at(tiny_model(context, kind=kind), reference=f"recipe-tiny-{kind}", model_kind=model_kind)


def sighted_folder(context: RecipeContext) -> Path:
    """The tiny VLM with eyes (`training.shapes_vision`: its vision tower and projector pre-trained on the
    shapes world, as LLaVA starts from CLIP and an aligned projector), built once under the models folder."""
    from training.shapes_vision import sighted_vlm

    return sighted_vlm(base_dir=tiny_model(context, kind="vlm"), out_dir=models_root(context) / "sighted-vlm")


def sighted_base(context: RecipeContext) -> Any:
    """The sighted tiny VLM registered as a `ModelArtifact`: the base a recipe that must read images starts from."""
    return _artifact_at(sighted_folder(context), reference="recipe-sighted-vlm")


def yes_no_labeler_folder(context: RecipeContext) -> Path:
    """The AI labeler of the RLAIF-V rounds: the sighted tiny VLM taught to answer the labeler's yes/no
    questions about shapes-world claims (`training.shapes_vision.yes_no_labeler`), built once under the models
    folder, as RLAIF-V takes an existing open model as its labeler."""
    from training.shapes_vision import yes_no_labeler

    return yes_no_labeler(sighted_dir=sighted_folder(context), out_dir=models_root(context) / "yes-no-labeler")


def sft_warm_start(
    context: RecipeContext, *, base: Any, n_items: int, max_steps: int, train_config: dict[str, Any] | None = None
) -> Any:
    """A VLM that describes scenes before feedback trains it (the papers start from an instruction-tuned model):
    annotators prefer the true caption to the one with a planted error in a pairwise project, through the API,
    and an SFT run on that snapshot (SFT learns the preferred answers) trains `base` on them, with
    `train_config`'s settings on top. Returns its model."""
    from annotation.services import SnapshotFilter, items_import, project_create, snapshot_create
    from evaluation.recipes import shapes
    from training.services import training_run_create

    seed = context.config.seed
    judge = annotator_user(context, 0)
    project = project_create(
        slug=unique_slug(f"{context.name}-sft-{context.tag}"), kind="pairwise", created_by=context.owner,
        name=f"{context.name} recipe: captions to learn to describe scenes", annotators=[judge.username],
    )  # fmt: skip
    source = shapes.shapes_import_write(context.out_dir / "sft-items", n=n_items, seed=9000 + seed)
    items_import(project=project, path=source, images=source.parent)
    truths = {json.loads(line)["responses"][0]["text"] for line in source.read_text(encoding="utf-8").splitlines()}

    def prefer_truth(task: dict[str, Any]) -> dict[str, Any]:
        left = task["responses"][0]["text"]
        return {"choice": "a" if left in truths else "b", "strength": 2}

    judged = annotate_all(client=api_client(judge), slug=project.slug, answer=prefer_truth, who=judge.username)
    snapshot = snapshot_create(
        project=project, created_by=context.owner, snapshot_filter=SnapshotFilter(test_fraction=0.0, seed=seed)
    )
    run = training_run_create(
        method="sft", snapshot=snapshot, base_artifact=base, created_by=context.owner,
        config={"max_steps": max_steps, "save_steps": max_steps, "seed": seed, **(train_config or {})},
    )  # fmt: skip
    model = training_run_to_end(context, run)
    context.stage("SFT warm start", project=project.slug, judgments=judged, **training_facts(run.pk))
    return model


# ------------------------------------------------------------------------------------------ people and the API


def annotator_user(context: RecipeContext, index: int) -> AbstractBaseUser:
    users = get_user_model()
    user, created = users.objects.get_or_create(username=f"recipe-annotator-{index}")
    if created:  # simulated: answers through the API with a token, never logs in
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def api_client(user: AbstractBaseUser) -> Any:
    """DRF's in-process client authenticated as `user` by token: the requests a browser or script would send."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def annotate_all(*, client: Any, slug: str, answer: Callable[[dict[str, Any]], dict[str, Any] | None], who: str) -> int:
    """Take every task of project `slug` through the annotation API (next → submit) and answer it with
    `answer(task)` (None skips it); returns how many were submitted. A refused answer stops the recipe."""
    submitted = 0
    while True:
        response = client.post(f"/api/v1/projects/{slug}/tasks/next/")
        if response.status_code == 204:
            return submitted
        if response.status_code != 200:
            raise RecipeFailed(f"{who}: tasks/next answered {response.status_code}: {response.content[:300]!r}")
        task = response.json()
        body = answer(task)
        if body is None:
            client.post(f"/api/v1/projects/{slug}/tasks/{task['assignment_id']}/skip/")
            continue
        body = {"client_request_id": f"{who}-{task['assignment_id']}", **body}
        done = client.post(f"/api/v1/projects/{slug}/tasks/{task['assignment_id']}/submit/", body, format="json")
        if done.status_code != 201:
            raise RecipeFailed(f"{who}: submit answered {done.status_code}: {done.content[:300]!r}")
        submitted += 1


# --------------------------------------------------------------------------------------- runs to their end


def _wait_for(read: Callable[[], str], finished: set[str], *, timeout: float = 3600.0) -> str:
    """A row's status once it is finished (another worker may hold it)."""
    deadline = time.monotonic() + timeout
    status = read()
    while status not in finished and time.monotonic() < deadline:
        time.sleep(1.0)
        status = read()
    return status


def training_run_to_end(context: RecipeContext, run: Any) -> Any:
    """Execute a queued training run here and return its model artifact (None for best-of-N); a run that does
    not succeed stops the recipe with its log's tail."""
    from training.models import ArtifactKind, JobStatus, ModelArtifact, TrainingRun
    from training.services import training_run_execute

    context.progress(f"[{context.name}] training run {run.pk} ({run.method}, {run.max_steps} steps) ...")
    with contextlib.suppress(Exception):  # the run's row records the failure, read below
        training_run_execute(run_id=run.pk)
    finished = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
    status = _wait_for(lambda: TrainingRun.objects.values_list("status", flat=True).get(pk=run.pk), finished)
    if status != JobStatus.SUCCEEDED:
        log = TrainingRun.objects.values_list("log", flat=True).get(pk=run.pk)
        raise RecipeFailed(f"training run {run.pk} ({run.method}) ended {status}:\n{log[-3000:]}")
    kinds = (ArtifactKind.POLICY, ArtifactKind.REWARD)
    return ModelArtifact.objects.filter(produced_by_id=run.pk, kind__in=kinds).order_by("-id").first()


def training_facts(run_id: int) -> dict[str, Any]:
    """What the run page shows: status, steps, first and last loss, and the model it registered."""
    from training.models import ModelArtifact, RunMetric, TrainingRun

    run = TrainingRun.objects.get(pk=run_id)
    rows = list(RunMetric.objects.filter(run_id=run_id).order_by("step").values_list("values", flat=True))
    losses = [values["loss"] for values in rows if "loss" in values]
    # The last held-out figures (a reward model's pairwise accuracy, an eval loss), when the run had a test split.
    evaluation = next(({k: v for k, v in values.items() if k.startswith("eval")} for values in reversed(rows)
                       if any(k.startswith("eval") for k in values)), {})  # fmt: skip
    model = ModelArtifact.objects.filter(produced_by_id=run_id).order_by("-id").first()
    return {
        "training_run": run.pk,
        "method": run.method,
        "status": run.status,
        "steps": run.step,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "model": model.name if model else None,
        "model_base": model.base.name if model and model.base_id else None,
        "snapshot": run.snapshot_id,
        **({"held_out": evaluation} if evaluation else {}),
    }


def benchmark_run_to_end(context: RecipeContext, run: Any) -> dict[str, Any]:
    """Execute a queued benchmark run here; returns its facts (id, benchmark, model, status, summary). A failed
    run stops the recipe with its error."""
    from annotation.models import JobStatus
    from evaluation.models import BenchmarkRun
    from evaluation.services import benchmark_run_execute

    context.progress(f"[{context.name}] benchmark run {run.pk} ({run.benchmark} on {run.model_label or 'files'}) ...")
    benchmark_run_execute(run_id=run.pk)
    finished = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
    status = _wait_for(lambda: BenchmarkRun.objects.values_list("status", flat=True).get(pk=run.pk), finished)
    run.refresh_from_db()
    if status != JobStatus.SUCCEEDED:
        raise RecipeFailed(f"benchmark run {run.pk} ({run.benchmark}) ended {status}: {run.error}\n{run.log[-2000:]}")
    return {
        "benchmark_run": run.pk,
        "benchmark": run.benchmark,
        "model": run.model_label,
        "status": run.status,
        "summary": run.summary,
    }


def benchmark(
    context: RecipeContext, *, name: str, config: dict[str, Any], model: Any = None, model_path: str = ""
) -> dict[str, Any]:
    """Start a benchmark run through its service (validated as the API validates it) and run it to its end."""
    from evaluation.services import benchmark_run_start

    run = benchmark_run_start(
        benchmark=name, config=config, model=model, model_path=model_path, created_by=context.owner
    )
    return benchmark_run_to_end(context, run)


def queued_benchmarks_of(context: RecipeContext, model: Any) -> list[dict[str, Any]]:
    """Run the benchmark runs a training run's config queued on `model` (its `benchmarks`) to their end."""
    from evaluation.models import BenchmarkRun

    return [benchmark_run_to_end(context, run) for run in BenchmarkRun.objects.filter(model=model).order_by("id")]


# ------------------------------------------------------------------------------------------------ the report


# The figures a report's table shows (the JSON keeps every number of every summary).
HEADLINE_METRICS = {
    "CHAIR_s", "CHAIR_i", "n_mentions", "response_rate", "mention_rate", "f1", "accuracy", "yes_ratio", "shr",
    "hal_words_ratio", "BLEU-4", "ROUGE-L", "METEOR", "win_rate", "bt", "position_consistency", "unparsed",
}  # fmt: skip


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a benchmark summary: its top-level ones, and one or two levels down for
    per-setting or per-model summaries (POPE's settings, humor's models)."""
    out: dict[str, Any] = {}

    def keep(name: str, value: Any) -> None:
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and name.rsplit(".", 1)[-1] in HEADLINE_METRICS
        ):
            out[name] = value

    for key, value in summary.items():
        keep(key, value)
        if isinstance(value, dict):
            for inner, number in value.items():
                keep(f"{key}.{inner}", number)
                if isinstance(number, dict):
                    for leaf, figure in number.items():
                        keep(f"{key}.{inner}.{leaf}", figure)
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def report_write(context: RecipeContext, *, status: str, error: str = "") -> Path:
    """Write `report.json` (settings, every stage's facts, the results) and `report.md` (a short table per
    benchmark row) into the run's folder; returns the JSON's path."""
    report = {
        "recipe": context.name,
        "status": status,
        "error": error,
        "config": asdict(context.config),
        "seconds": round(time.monotonic() - context.started, 1),
        "stages": context.stages,
        "results": context.results,
    }
    path = context.out_dir / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    lines = [
        f"# Recipe {context.name} ({context.config.size}, seed {context.config.seed}): {status}",
        "",
        f"{report['seconds']} s. Stages: " + " → ".join(stage["stage"] for stage in context.stages) + ".",
        "",
    ]
    if error:
        lines += ["```", error[-2000:], "```", ""]
    lines += benchmark_table(context.results.get("benchmarks", []))
    (context.out_dir / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return path


def benchmark_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines of a table: one row per benchmark and metric, one column per model label."""
    if not rows:
        return []
    labels = list(dict.fromkeys(row["label"] for row in rows))
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        for metric, value in headline(row.get("summary", {})).items():
            # Per-model summaries (humor) name the model; one column per model says it already.
            metric = metric.replace(f"models.{row['model']}.", "model.")
            cells.setdefault((row["benchmark"], metric), {})[row["label"]] = value
    lines = ["| benchmark | metric | " + " | ".join(map(_cell, labels)) + " |", "|---|---|" + "---|" * len(labels)]
    for (name, metric), values in cells.items():
        lines.append(f"| {name} | {metric} | " + " | ".join(_cell(values.get(label, "")) for label in labels) + " |")
    return [*lines, ""]


def benchmark_row(context: RecipeContext, facts: dict[str, Any], *, label: str) -> dict[str, Any]:
    """Keep a benchmark run's facts in the report's results under a label saying which model it was."""
    row = {**facts, "label": label}
    context.results.setdefault("benchmarks", []).append(row)
    context.stage(f"benchmark {facts['benchmark']} ({label})", benchmark_run=facts["benchmark_run"],
                  metrics=headline(facts["summary"]))  # fmt: skip
    return row
