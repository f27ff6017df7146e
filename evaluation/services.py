"""Writes for benchmark runs: start (validate the config, queue), execute (in the worker), cancel, reap dead.

`benchmark_run_execute` runs in a Celery worker on the `benchmark` queue; it alone loads a model (torch, through
`evaluation.runners.model_answerer`, imported lazily). Validation is torch-free, so the web process refuses a
bad config before anything is queued.

Configs (paths are on the server):
- pope: ``{"questions": [FILE, ...], "images": DIR}`` or ``{"shapes": {"n_images", "seed", "settings"}}`` (scenes
  drawn and written into the run's folder), plus ``batch_size`` (8), ``max_new_tokens`` (16), ``limit``; needs a
  model.
- chair: ``{"captions": FILE, "annotations": [FILE, ...], "synonyms": FILE (optional)}``.
- captions: ``{"predictions": FILE, "references": FILE, "meteor": true}``.
- chair on the shapes world: ``{"shapes": {"n_images", "seed"}}`` with a model that describes held-out scenes.
- object_halbench: ``{"responses": FILE, "annotations": [FILE, ...]}``, or with a model ``{"images": DIR,
  "annotations": [instances FILE, ...]}`` or ``{"shapes": {...}}``; ``unique_mentions``, ``limit``.
- mmhal: ``{"questions": FILE (MMHal's response_template.json), "images": DIR (when a model answers), "judge":
  JUDGE, "prompt_version"}``; without a model the file's ``model_answer``s are judged.
- shr: ``{"items": FILE, "images": DIR, "judge": JUDGE, "prompt_version"}`` or ``{"shapes": {...}}`` (ground
  truth, no judge); without a model the items' ``description``s are judged.
- human_eval: ``{"project": SLUG}`` (a correction project; rates per model of its responses).
- humor: ``{"pairwise_project": SLUG}`` (people's verdicts, e.g. in a project `humor_pairwise_project_create` made)
  or ``{"contest_project": SLUG, "judge": JUDGE, "top_k": 1, "captions": FILE (optional: else the model writes
  them), "prompt_version"}``; ``n_bootstrap`` (200) for the Bradley-Terry intervals.
- JUDGE: ``{"kind": "local" | "openai", "model": FOLDER | served name, "base_url": URL (openai),
  "max_new_tokens": 512, "batch_size": 8}`` -- the AI labeler's backends; the server's API key is the worker's
  ``LOUPE_LABELER_API_KEY`` setting, never stored in a run.
"""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import DEFAULT_HALLUCINATION_TYPES, Item, JobStatus, Project, ProjectKind, Response
from evaluation import runners, selectors
from evaluation.models import Benchmark, BenchmarkExample, BenchmarkRun
from evaluation.runners import BenchmarkOutcome, Cancelled, InputError
from loupe.db import Heartbeat, log_appended, run_cancel
from loupe.errors import ApplicationError
from loupe.failures import failure_cause, failure_log
from training.models import ModelArtifact

POPE_SETTINGS = ("random", "popular", "adversarial")
_MODEL_KEYS = {"batch_size", "max_new_tokens", "limit"}
_KEYS: dict[str, set[str]] = {
    "pope": {"questions", "images", "shapes", *_MODEL_KEYS},
    "chair": {"captions", "annotations", "synonyms", "shapes", *_MODEL_KEYS},
    "captions": {"predictions", "references", "meteor"},
    "object_halbench": {"responses", "annotations", "synonyms", "images", "shapes", "unique_mentions", *_MODEL_KEYS},
    "mmhal": {"questions", "images", "judge", "prompt_version", *_MODEL_KEYS},
    "shr": {"items", "images", "shapes", "judge", "prompt_version", *_MODEL_KEYS},
    "human_eval": {"project"},
    "humor": {
        "pairwise_project",
        "contest_project",
        "judge",
        "top_k",
        "captions",
        "prompt_version",
        "n_bootstrap",
        *_MODEL_KEYS,
    },
}
_JUDGE_KEYS = {"kind", "model", "base_url", "max_new_tokens", "batch_size"}


def _file(config: dict[str, Any], key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not Path(value).is_file():
        raise ApplicationError(f"config.{key} must be the path of an existing file.", {"field": f"config.{key}"})
    return value


def _files(config: dict[str, Any], key: str) -> list[str]:
    value = config.get(key)
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not value:
        raise ApplicationError(f"config.{key} must list at least one file.", {"field": f"config.{key}"})
    for i, path in enumerate(value):
        if not isinstance(path, str) or not Path(path).is_file():
            raise ApplicationError(f"config.{key}[{i}]: no such file {path!r}.", {"field": f"config.{key}"})
    return value


def _positive_int(config: dict[str, Any], key: str, default: int | None) -> int | None:
    value = config.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ApplicationError(f"config.{key} must be a whole number of at least 1.", {"field": f"config.{key}"})
    return value


def _folder(config: dict[str, Any], key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not Path(value).is_dir():
        raise ApplicationError(f"config.{key} must be the path of an existing folder.", {"field": f"config.{key}"})
    return value


def _model_settings(
    config: dict[str, Any], model_dir: str, benchmark: str, *, required: bool = True, max_new_tokens: int = 256
) -> dict[str, Any]:
    """Batch size, answer length and limit of a benchmark whose model answers (``required``: it must have one)."""
    if required and not model_dir:
        name = Benchmark(benchmark).label
        raise ApplicationError(f"{name} needs a model that answers: give a model or a model_path.", {"field": "model"})
    return {
        "batch_size": _positive_int(config, "batch_size", 8),
        "max_new_tokens": _positive_int(config, "max_new_tokens", max_new_tokens),
        "limit": _positive_int(config, "limit", None),
    }


def _shapes(config: dict[str, Any]) -> dict[str, int]:
    shapes = config["shapes"]
    if not isinstance(shapes, dict):
        raise ApplicationError('config.shapes must be an object such as {"n_images": 20, "seed": 0}.')
    unknown = sorted(set(shapes) - {"n_images", "seed"})
    if unknown:
        raise ApplicationError(f"Unknown shapes setting {unknown[0]!r}.", {"field": f"config.shapes.{unknown[0]}"})
    seed = shapes.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ApplicationError("config.shapes.seed must be a whole number of at least 0.", {"field": "config.shapes"})
    return {"n_images": _positive_int(shapes, "n_images", 20), "seed": seed}


def _judge_config(config: dict[str, Any]) -> dict[str, Any]:
    judge = config.get("judge")
    if not isinstance(judge, dict):
        raise ApplicationError(
            'config.judge must say which judge model rates the answers, e.g. {"kind": "local", "model": FOLDER} '
            'or {"kind": "openai", "model": NAME, "base_url": URL}.',
            {"field": "config.judge"},
        )
    unknown = sorted(set(judge) - _JUDGE_KEYS)
    if unknown:
        raise ApplicationError(f"Unknown judge setting {unknown[0]!r}.", {"field": f"config.judge.{unknown[0]}"})
    kind, model = judge.get("kind", "local"), judge.get("model")
    if kind not in ("local", "openai"):
        raise ApplicationError("config.judge.kind must be 'local' or 'openai'.", {"field": "config.judge.kind"})
    if not isinstance(model, str) or not model.strip():
        raise ApplicationError("config.judge.model must name the judge model.", {"field": "config.judge.model"})
    if kind == "local" and not Path(model).is_dir():
        raise ApplicationError(f"config.judge.model: no model folder {model!r}.", {"field": "config.judge.model"})
    base_url = judge.get("base_url", "")
    if kind == "openai" and (not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))):
        raise ApplicationError(
            "config.judge.base_url must be the judge server's URL (http://host:port/v1).",
            {"field": "config.judge.base_url"},
        )
    return {
        "kind": kind,
        "model": model.strip(),
        "base_url": base_url if kind == "openai" else "",
        "max_new_tokens": _positive_int(judge, "max_new_tokens", 512),
        "batch_size": _positive_int(judge, "batch_size", 8),
    }


def _judged_settings(config: dict[str, Any], benchmark: str) -> dict[str, Any]:
    from evaluation.benchmarks import mmhal, shr

    prompts = (mmhal if benchmark == "mmhal" else shr).JUDGE_PROMPTS
    version = config.get("prompt_version", next(iter(prompts)))
    if version not in prompts:
        raise ApplicationError(
            f"config.prompt_version must be one of {', '.join(prompts)}.", {"field": "config.prompt_version"}
        )
    return {"judge": _judge_config(config), "prompt_version": version}


def _answers_from(config: dict[str, Any], model_dir: str) -> dict[str, Any]:
    """Who answers a judged benchmark: the run's model when it is a model folder (then config.images holds the
    images), else the file's own answers are judged and the model (or model_path) only labels the row."""
    if model_dir == MODEL_TO_COME or (model_dir and Path(model_dir).is_dir()):
        return {"answers_from": "model", "images": _folder(config, "images")}
    return {"answers_from": "file"}


def _object_halbench_config(config: dict[str, Any], model_dir: str) -> dict[str, Any]:
    unique = config.get("unique_mentions", False)
    if not isinstance(unique, bool):
        raise ApplicationError("config.unique_mentions must be true or false.", {"field": "config.unique_mentions"})
    if "shapes" in config:
        settings_ = _model_settings(config, model_dir, "object_halbench")
        return {**settings_, "shapes": _shapes(config), "unique_mentions": unique}
    out: dict[str, Any] = {"annotations": _files(config, "annotations"), "unique_mentions": unique}
    out["synonyms"] = _file(config, "synonyms") if "synonyms" in config else str(runners.DEFAULT_SYNONYMS)
    if "responses" in config:
        return {**out, "responses": _file(config, "responses"), "limit": None}
    if not model_dir:
        raise ApplicationError(
            "Object HalBench needs config.responses (a JSON list of image_id and caption), or a model with "
            "config.images (or config.shapes).",
            {"field": "config.responses"},
        )
    return {**out, **_model_settings(config, model_dir, "object_halbench"), "images": _folder(config, "images")}


def _human_eval_config(config: dict[str, Any]) -> dict[str, Any]:
    slug = config.get("project")
    project = Project.objects.filter(slug=slug).first() if isinstance(slug, str) else None
    if project is None:
        raise ApplicationError("config.project must be the slug of a correction project.", {"field": "config.project"})
    if project.kind != ProjectKind.CORRECTION:
        raise ApplicationError(
            f"Project {slug!r} is a {project.kind} project; human evaluation reads a correction project.",
            {"field": "config.project"},
        )
    return {"project": slug}


def benchmark_config_check(*, benchmark: str, config: dict[str, Any], model_dir: str) -> dict[str, Any]:
    """The config with its defaults filled in, or an ApplicationError naming the field at fault."""
    if benchmark not in Benchmark.values:
        raise ApplicationError(f"Unknown benchmark {benchmark!r}; choose one of {', '.join(Benchmark.values)}.")
    unknown = sorted(set(config) - _KEYS[benchmark])
    if unknown:
        raise ApplicationError(f"Unknown {benchmark} setting {unknown[0]!r}.", {"field": f"config.{unknown[0]}"})
    if benchmark == "captions":
        return {
            "predictions": _file(config, "predictions"),
            "references": _file(config, "references"),
            "meteor": bool(config.get("meteor", True)),
        }
    if benchmark == "chair" and "shapes" in config:
        return {**_model_settings(config, model_dir, benchmark, max_new_tokens=64), "shapes": _shapes(config)}
    if benchmark == "chair":
        out = {"captions": _file(config, "captions"), "annotations": _files(config, "annotations")}
        out["synonyms"] = _file(config, "synonyms") if "synonyms" in config else str(runners.DEFAULT_SYNONYMS)
        return out
    if benchmark == "object_halbench":
        return _object_halbench_config(config, model_dir)
    if benchmark == "mmhal":
        out = {**_model_settings(config, model_dir, benchmark, required=False), "questions": _file(config, "questions")}
        return {**out, **_answers_from(config, model_dir), **_judged_settings(config, benchmark)}
    if benchmark == "shr":
        if "shapes" in config:
            return {**_model_settings(config, model_dir, benchmark), "shapes": _shapes(config)}
        out = {**_model_settings(config, model_dir, benchmark, required=False), "items": _file(config, "items")}
        return {**out, **_answers_from(config, model_dir), **_judged_settings(config, benchmark)}
    if benchmark == "human_eval":
        return _human_eval_config(config)
    if benchmark == "humor":
        return _humor_config(config, model_dir)
    out = _model_settings(config, model_dir, benchmark, max_new_tokens=16)
    if "shapes" in config:
        shapes = config["shapes"] if isinstance(config["shapes"], dict) else {}
        chosen = shapes.get("settings", list(POPE_SETTINGS))
        if not isinstance(chosen, list) or not chosen or any(s not in POPE_SETTINGS for s in chosen):
            raise ApplicationError(f"config.shapes.settings must list some of {', '.join(POPE_SETTINGS)}.")
        out["shapes"] = {
            "n_images": _positive_int(shapes, "n_images", 10),
            "seed": int(shapes.get("seed", 0)),
            "settings": chosen,
        }
        return out
    out["questions"] = _files(config, "questions")
    if not isinstance(config.get("images"), str) or not Path(config["images"]).is_dir():
        raise ApplicationError(
            "config.images must be the folder holding the questions' images.", {"field": "config.images"}
        )
    out["images"] = config["images"]
    return out


@transaction.atomic
def benchmark_run_start(
    *,
    benchmark: str,
    config: dict[str, Any],
    model: ModelArtifact | None = None,
    model_path: str = "",
    created_by: AbstractBaseUser | None = None,
) -> BenchmarkRun:
    """Validate and queue a run on the `benchmark` queue."""
    model_dir = model.location if model is not None else model_path.strip()
    if benchmark == "pope" and model_dir and not Path(model_dir).is_dir():
        raise ApplicationError(f"Model folder {model_dir!r} does not exist.", {"field": "model_path"})
    checked = benchmark_config_check(benchmark=benchmark, config=config, model_dir=model_dir)
    answers = "max_new_tokens" in checked and checked.get("answers_from") != "file"  # else the model is a label
    if answers and model_dir and not Path(model_dir).is_dir():
        raise ApplicationError(f"Model folder {model_dir!r} does not exist.", {"field": "model_path"})
    run = BenchmarkRun(
        benchmark=benchmark,
        model=model,
        model_path="" if model else model_path.strip(),
        config=checked,
        created_by=created_by,
    )
    run.full_clean()
    run.save()
    from evaluation.tasks import benchmark_run_execute_task

    transaction.on_commit(lambda: benchmark_run_execute_task.delay(run.pk))
    return run


@transaction.atomic
def benchmark_run_cancel(*, run: BenchmarkRun) -> BenchmarkRun:
    """Queued runs end at once; running ones stop after the current batch."""
    return run_cancel(BenchmarkRun, run.pk)


def benchmark_runs_reap_dead() -> int:
    """Mark running runs whose heartbeat stopped as failed (their worker died); returns how many.

    On the embedded broker a killed worker's task is never delivered again, so the run's heartbeat is what tells
    a dead run from a live one. Called when a worker starts and whenever runs are listed.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS)
    return BenchmarkRun.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).update(
        status=JobStatus.FAILED,
        finished_at=timezone.now(),
        error="The worker stopped (no heartbeat); start the run again.",
        log=log_appended("\n[loupe] no heartbeat: the worker died\n"),
    )


def _log(run_id: int, text: str) -> None:
    BenchmarkRun.objects.filter(pk=run_id).update(log=log_appended(text))


def _progress(run_id: int):  # noqa: ANN202
    def report(done: int, total: int) -> None:
        BenchmarkRun.objects.filter(pk=run_id).update(done=done, total=total, heartbeat_at=timezone.now())
        if BenchmarkRun.objects.filter(pk=run_id, cancel_requested=True).exists():
            raise Cancelled

    return report


def _answerer(run: BenchmarkRun, image_dir: Path | str | None):  # noqa: ANN202
    """The run's model answering prompts about images in ``image_dir`` (loaded here, in the worker)."""
    model_dir = run.model.location if run.model_id else run.model_path
    _log(run.pk, f"[loupe] loading {model_dir}\n")
    return runners.model_answerer(
        model=model_dir, image_dir=image_dir or ".", max_new_tokens=run.config["max_new_tokens"]
    )


def _judge(run: BenchmarkRun) -> tuple[runners.Judge, str]:
    settings_ = run.config["judge"]
    _log(run.pk, f"[loupe] judge: {settings_['kind']} {settings_['model']}\n")
    return runners.judge_open(
        runners.JudgeSettings(
            kind=settings_["kind"],
            model=settings_["model"],
            base_url=settings_["base_url"],
            api_key=settings.LOUPE_LABELER_API_KEY,
            max_new_tokens=settings_["max_new_tokens"],
            batch_size=settings_["batch_size"],
        )
    )


def _judged_outcome(run: BenchmarkRun, progress: runners.Progress) -> BenchmarkOutcome:
    """MMHal and SHR: the model answers (when the run has one), then the judge model rates."""
    config = run.config
    images = config.get("images")
    answer_fn = _answerer(run, images) if config["answers_from"] == "model" else None
    judge, judge_name = _judge(run)
    common = {
        "judge": judge,
        "judge_name": judge_name,
        "answer_fn": answer_fn,
        "images": images,
        "prompt_version": config["prompt_version"],
        "batch_size": config["batch_size"],
        "judge_batch_size": config["judge"]["batch_size"],
        "limit": config["limit"],
        "progress": progress,
    }
    if run.benchmark == "mmhal":
        return runners.mmhal_run(questions=config["questions"], **common)
    return runners.shr_run(items=config["items"], **common)


def _outcome(run: BenchmarkRun) -> BenchmarkOutcome:
    config, progress = run.config, _progress(run.pk)
    if run.benchmark == "human_eval":
        return human_eval_outcome(project_slug=config["project"], progress=progress)
    if run.benchmark == "humor":
        return humor_outcome(run=run, progress=progress)
    if run.benchmark in ("mmhal", "shr") and "shapes" not in config:
        return _judged_outcome(run, progress)
    if run.benchmark in ("chair", "object_halbench", "shr") and "shapes" in config:
        image_dir = selectors.benchmark_image_dir(run=run)
        answer_fn = _answerer(run, image_dir)
        if run.benchmark == "chair":
            return runners.chair_shapes_run(
                **config["shapes"],
                image_dir=image_dir,
                answer_fn=answer_fn,
                batch_size=config["batch_size"],
                progress=progress,
            )
        runner = runners.object_halbench_run if run.benchmark == "object_halbench" else runners.shr_run
        extra = {"unique_mentions": config["unique_mentions"]} if run.benchmark == "object_halbench" else {}
        return runner(
            shapes=config["shapes"],
            shapes_dir=image_dir,
            answer_fn=answer_fn,
            batch_size=config["batch_size"],
            progress=progress,
            **extra,
        )
    if run.benchmark == "object_halbench":
        answer_fn = _answerer(run, config["images"]) if "images" in config else None
        return runners.object_halbench_run(
            annotations=config["annotations"],
            responses=config.get("responses"),
            images=config.get("images"),
            answer_fn=answer_fn,
            synonyms=config["synonyms"],
            batch_size=config.get("batch_size", 8),
            limit=config.get("limit"),
            unique_mentions=config["unique_mentions"],
            progress=progress,
        )
    if run.benchmark == "chair":
        return runners.chair_run(
            captions=config["captions"],
            annotations=config["annotations"],
            synonyms=config["synonyms"],
            progress=progress,
        )
    if run.benchmark == "captions":
        return runners.captions_run(
            predictions=config["predictions"],
            references=config["references"],
            meteor=config["meteor"],
            progress=progress,
        )
    if "shapes" in config:
        image_dir = selectors.benchmark_image_dir(run=run)
        questions = runners.pope_shapes_questions(**config["shapes"], image_dir=image_dir)
    else:
        image_dir = Path(config["images"])
        questions = runners.pope_read(questions=config["questions"], images=config["images"], limit=config["limit"])
    if config.get("limit"):
        questions = {name: rows[: config["limit"]] for name, rows in questions.items()}
    answerer = _answerer(run, image_dir)
    return runners.pope_run(
        questions=questions, generate_fn=answerer, batch_size=config["batch_size"], progress=progress
    )


def benchmark_run_execute(*, run_id: int) -> None:
    """Run a queued benchmark run to its end: examples and summary stored, or the failure and its log recorded.

    Idempotent: only a QUEUED run is claimed, so a second delivery of the task does nothing.
    """
    claimed = BenchmarkRun.objects.filter(pk=run_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    if not claimed:
        return
    run = BenchmarkRun.objects.select_related("model").get(pk=run_id)
    _log(run_id, f"[loupe] starting {run.benchmark} on {run.model_label or 'files'}\n")
    heartbeat = Heartbeat(BenchmarkRun.objects.filter(pk=run_id, status=JobStatus.RUNNING))
    heartbeat.start()
    try:
        outcome = _outcome(run)
    except Cancelled:
        BenchmarkRun.objects.filter(pk=run_id).update(status=JobStatus.CANCELLED, finished_at=timezone.now())
        _log(run_id, "[loupe] cancelled\n")
        return
    except Exception as exc:
        # An input error is the user's to fix: its message is the error. Anything else keeps its traceback.
        message = str(exc) if isinstance(exc, InputError) else failure_cause(exc)
        BenchmarkRun.objects.filter(pk=run_id).update(
            status=JobStatus.FAILED, finished_at=timezone.now(), error=message
        )
        _log(run_id, failure_log(exc))  # the traceback for staff
        return
    finally:
        heartbeat.stop()
    with transaction.atomic():
        BenchmarkExample.objects.filter(run_id=run_id).delete()
        BenchmarkExample.objects.bulk_create(
            [
                BenchmarkExample(
                    run_id=run_id,
                    index=i,
                    key=example["key"][:200],
                    input=example["input"],
                    answer=example["answer"],
                    detail=example["detail"],
                    hallucinated=example["hallucinated"],
                )
                for i, example in enumerate(outcome.examples)
            ],
            batch_size=500,
        )
        BenchmarkRun.objects.filter(pk=run_id).update(
            status=JobStatus.SUCCEEDED, finished_at=timezone.now(), summary=outcome.summary
        )
    _log(run_id, f"[loupe] succeeded: {len(outcome.examples)} examples\n")


def human_eval_outcome(*, project_slug: str, progress: runners.Progress) -> BenchmarkOutcome:
    """MHumanEval-style rates per model from a correction project: per hallucination type, the share of the
    model's corrected answers with such a segment ("any": with any segment), and how many answers were judged."""
    from evaluation.benchmarks.human_eval import human_eval_rates

    project = Project.objects.filter(slug=project_slug).first()
    if project is None:
        raise InputError(f"config.project: no project {project_slug!r} (deleted since the run started?)")
    by_model = selectors.correction_marks_by_model(project=project)
    if not by_model:
        raise InputError(f"project {project_slug!r} has no corrections yet: nothing to rate")
    types = list(project.hallucination_types or DEFAULT_HALLUCINATION_TYPES)
    # A type marked before the project's list changed still counts, under its own name.
    types += sorted({t for marks in by_model.values() for m in marks for t in m} - set(types))
    models, examples = {}, []
    for name, marks in sorted(by_model.items()):
        result = human_eval_rates(marks, types)
        models[name] = {**result.rates, "n_answers": result.n_answers}
        examples.append(
            {
                "key": name,
                "input": {"text": f"{name}: answers judged in project {project_slug}: {result.n_answers}"},
                "answer": "",
                "detail": {"rates": result.rates, "n_segments": result.n_segments, "n_answers": result.n_answers},
                "hallucinated": None,
            }
        )
    progress(len(models), len(models))
    summary = {"judged_by": "people", "project": project_slug, "types": types, "models": models}
    return BenchmarkOutcome(summary=summary, examples=examples)


HUMOR_CAPTION_PROMPT = "Write a funny caption for this cartoon."


def _project_of_kind(config: dict[str, Any], key: str, kind: str) -> Project:
    slug = config.get(key)
    project = Project.objects.filter(slug=slug).first() if isinstance(slug, str) else None
    if project is None or project.kind != kind:
        raise ApplicationError(f"config.{key} must be the slug of a {kind} project.", {"field": f"config.{key}"})
    return project


def _humor_config(config: dict[str, Any], model_dir: str = "") -> dict[str, Any]:
    """People's verdicts (``pairwise_project``) or a judge model's over a caption contest (``contest_project``)."""
    n_bootstrap = _positive_int(config, "n_bootstrap", 200)
    if "pairwise_project" in config:
        _project_of_kind(config, "pairwise_project", ProjectKind.PAIRWISE)
        return {"pairwise_project": config["pairwise_project"], "n_bootstrap": n_bootstrap}
    if "contest_project" not in config:
        raise ApplicationError(
            "Humor needs config.pairwise_project (people's verdicts) or config.contest_project with a judge.",
            {"field": "config.contest_project"},
        )
    _project_of_kind(config, "contest_project", ProjectKind.RATING)
    from evaluation.benchmarks import humor

    version = config.get("prompt_version", humor.JUDGE_PROMPT_VERSION)
    if version not in humor.JUDGE_PROMPTS:
        raise ApplicationError(
            f"config.prompt_version must be one of {', '.join(humor.JUDGE_PROMPTS)}.",
            {"field": "config.prompt_version"},
        )
    out = {
        "contest_project": config["contest_project"],
        "top_k": _positive_int(config, "top_k", 1),
        "n_bootstrap": n_bootstrap,
        "judge": _judge_config(config),
        "prompt_version": version,
    }
    if "captions" in config:
        return {**out, "captions": _file(config, "captions")}
    return {**out, **_model_settings(config, model_dir, "humor", max_new_tokens=32)}


def _humor_ratings(comparisons: list, n_bootstrap: int) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    from evaluation.benchmarks.humor import HumorConfig, bradley_terry_ratings

    ratings = bradley_terry_ratings(comparisons, HumorConfig(n_bootstrap=n_bootstrap))
    by_player = {r.player: {"bt": r.strength, "bt_low": r.low, "bt_high": r.high} for r in ratings}
    return by_player, [{"player": r.player, "strength": r.strength, "low": r.low, "high": r.high} for r in ratings]


def humor_model_captions(run: BenchmarkRun, contests: list, progress: runners.Progress) -> list[str]:
    """The captions a run's model gives the contests: from its config's captions file, else written by the model
    (the contest's cartoon, "Write a funny caption for this cartoon.")."""
    config = run.config
    if "captions" in config:
        given = json.loads(Path(config["captions"]).read_text(encoding="utf-8"))
        if not isinstance(given, dict):
            raise InputError(f"config.captions file {config['captions']}: not a JSON object of contest id -> caption")
        missing = [item.external_id for item, _ in contests if not isinstance(given.get(item.external_id), str)]
        if missing:
            raise InputError(f"config.captions file {config['captions']}: no caption for contest {missing[0]!r}")
        return [given[item.external_id] for item, _ in contests]
    media = Path(settings.MEDIA_ROOT)
    answer_fn = _answerer(run, media)
    prompts = [runners.ImagePrompt(item.image, HUMOR_CAPTION_PROMPT) for item, _ in contests]
    return runners.answers_in_batches(
        prompts=prompts, answer_fn=answer_fn, batch_size=config["batch_size"], progress=progress
    )


def humor_outcome(*, run: BenchmarkRun, progress: runners.Progress) -> BenchmarkOutcome:
    """Win-rates against the top human captions with Bradley-Terry ratings (bootstrap intervals) over every
    model and "human": from people's pairwise verdicts, or from a judge model asked in both orders."""
    from evaluation.benchmarks import humor

    config = run.config
    if "pairwise_project" in config:
        project = Project.objects.filter(slug=config["pairwise_project"]).first()
        outcomes = selectors.pairwise_outcomes(project=project) if project else []
        if not outcomes:
            raise InputError(f"pairwise project {config['pairwise_project']!r} has no judgments yet")
        comparisons = [
            humor.Comparison(a, b, choice if choice in ("a", "b") else "tie")  # "both bad": neither is funnier
            for a, b, choice in outcomes
            if a != b
        ]
        models: dict[str, dict[str, float]] = {}
        for player in sorted({c.a for c in comparisons} | {c.b for c in comparisons} - {"human"}):
            against = [c for c in comparisons if {c.a, c.b} == {player, "human"}]
            score = sum(1.0 if (c.winner == "a") == (c.a == player) and c.winner != "tie" else
                        0.5 if c.winner == "tie" else 0.0 for c in against)  # fmt: skip
            models[player] = {"win_rate": score / len(against) if against else 0.0, "n_judgments": len(against)}
        by_player, ratings = _humor_ratings(comparisons, config["n_bootstrap"])
        for player, values in models.items():
            values.update(by_player.get(player, {}))
        progress(len(outcomes), len(outcomes))
        summary = {"judged_by": "people", "project": project.slug, "models": models, "ratings": ratings,
                   "human": by_player.get("human", {})}  # fmt: skip
        examples = [
            {"key": str(i + 1), "input": {"text": f"{a} vs {b}"}, "answer": choice, "detail": {}, "hallucinated": None}
            for i, (a, b, choice) in enumerate(outcomes)
        ]
        return BenchmarkOutcome(summary=summary, examples=examples)
    project = Project.objects.filter(slug=config["contest_project"]).first()
    contests = selectors.contest_top_captions(project=project, top_k=config["top_k"]) if project else []
    if not contests:
        raise InputError(f"contest project {config['contest_project']!r} has no rated captions")
    captions = humor_model_captions(run, contests, progress)
    pairs, keys = [], []
    for (item, humans), caption in zip(contests, captions, strict=True):
        for human in humans:
            pairs.append((item.prompt, caption, human.text))
            keys.append((item, human))
    judge, judge_name = _judge(run)

    def replies_of(prompts: list[str]) -> list[str]:
        return [reply for chunk in _chunks(prompts, config["judge"]["batch_size"], judge, progress) for reply in chunk]

    judgments, replies, unparsed = humor.verdicts_in_both_orders(pairs, replies_of, config["prompt_version"])
    name = run.model_label or "model"
    rate = humor.win_rate(judgments)
    by_player, ratings = _humor_ratings(humor.comparisons_from_win_rate(name, judgments), config["n_bootstrap"])
    summary = {
        "judged_by": "judge model", "judge_model": judge_name, "judge_prompt_version": config["prompt_version"],
        "project": config["contest_project"], "unparsed": unparsed, "ratings": ratings,
        "models": {name: {"win_rate": rate.win_rate, "wins": rate.wins, "ties": rate.ties, "losses": rate.losses,
                          "n_pairs": rate.n_pairs, "position_consistency": rate.position_consistency,
                          **by_player.get(name, {})}},
    }  # fmt: skip
    examples = [
        {
            "key": f"{item.external_id}/{human.pk}",
            "input": {"text": item.prompt, "human_caption": human.text},
            "answer": pair[1],
            "detail": {
                "verdicts": list(judgment),
                "judge_replies": list(reply_pair),
                "score": humor.pair_outcome(*judgment),
            },
            "hallucinated": None,
        }  # fmt: skip
        for (item, human), pair, judgment, reply_pair in zip(keys, pairs, judgments, replies, strict=True)
    ]
    return BenchmarkOutcome(summary=summary, examples=examples)


def _chunks(prompts: list[str], size: int, judge: runners.Judge, progress: runners.Progress):  # noqa: ANN202
    """The judge's replies ``size`` prompts at a time, progress counted in judged pairs (two prompts each)."""
    for start in range(0, len(prompts), size):
        yield judge(prompts[start : start + size])
        progress(min(len(prompts), start + size) // 2, len(prompts) // 2)


@transaction.atomic
def humor_pairwise_project_create(
    *,
    contest_project: Project,
    slug: str,
    captions: dict[str, str],
    model_name: str,
    top_k: int = 1,
    created_by: AbstractBaseUser | None = None,
) -> Project:
    """A pairwise project for people to judge a model's captions against each contest's ``top_k`` best human
    captions: one item per (contest, human caption), the model's caption and the human's (model "human") as
    its two responses; the pairwise page shows them in random order, which cancels position bias. The humor
    benchmark reads its verdicts back (``{"pairwise_project": slug}``)."""
    from annotation.services.projects import project_create

    if not model_name.strip() or model_name.strip() == "human":
        raise ApplicationError("Name the model whose captions these are (not 'human').", {"field": "model_name"})
    contests = selectors.contest_top_captions(project=contest_project, top_k=top_k)
    missing = [item.external_id for item, _ in contests if not str(captions.get(item.external_id, "")).strip()]
    if not contests or missing:
        what = f"no caption for contest {missing[0]!r}" if missing else "the contest project has no rated captions"
        raise ApplicationError(f"Cannot build the pairwise project: {what}.", {"field": "captions"})
    project = project_create(
        slug=slug, kind=ProjectKind.PAIRWISE, created_by=created_by, name=f"Humor: {model_name} vs top human captions",
        instructions="Which caption is funnier?",
    )  # fmt: skip
    for item, humans in contests:
        for human in humans:
            pair = Item.objects.create(
                project=project, external_id=f"{item.external_id}/{human.pk}", prompt=item.prompt, image=item.image,
                meta={"contest": item.external_id, "contest_project": contest_project.slug},
            )  # fmt: skip
            Response.objects.bulk_create(
                [
                    Response(item=pair, position=0, text=captions[item.external_id].strip(), model_name=model_name),
                    Response(item=pair, position=1, text=human.text, model_name="human",
                             meta={"source_response": human.pk}),
                ]
            )  # fmt: skip
    return project


# ------------------------------------------------------------------------------------- after a training run

MODEL_TO_COME = "<the model the training run will produce>"


def benchmarks_after_training_check(*, benchmarks: Any) -> list[dict[str, Any]]:
    """A training run config's ``benchmarks``: a list of ``{"benchmark": NAME, "config": {...}}`` whose model (the
    one the run will produce) answers; each config checked now as a run of it would be (torch-free)."""
    if not isinstance(benchmarks, list):
        raise ApplicationError(
            'config.benchmarks must be a list such as [{"benchmark": "pope", "config": {"shapes": {}}}].',
            {"field": "config.benchmarks"},
        )
    for i, entry in enumerate(benchmarks):
        field = f"config.benchmarks[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"benchmark", "config"} or "benchmark" not in entry:
            raise ApplicationError(f'{field} must be {{"benchmark": NAME, "config": {{...}}}}.', {"field": field})
        config = entry.get("config", {})
        if not isinstance(config, dict):
            raise ApplicationError(f"{field}.config must be a JSON object.", {"field": f"{field}.config"})
        try:
            checked = benchmark_config_check(benchmark=entry["benchmark"], config=config, model_dir=MODEL_TO_COME)
        except ApplicationError as error:
            raise ApplicationError(f"{field}: {error.message}", {"field": field}) from error
        if "max_new_tokens" not in checked:
            raise ApplicationError(
                f"{field}: {entry['benchmark']} with this config does not ask the trained model anything.",
                {"field": field},
            )
    return benchmarks


def benchmark_runs_after_training(*, run: Any, artifact: ModelArtifact) -> str:
    """Queue the benchmark runs a succeeded training run's config asks for, on the model it produced; returns a
    log line per benchmark (an input gone since the run started is logged there, not a failed training run)."""
    from training.models import ArtifactKind

    if artifact.kind != ArtifactKind.POLICY:
        return f"[loupe] benchmarks skipped: {artifact.name} is a {artifact.kind} model, not a policy\n"
    lines = []
    for entry in run.config.get("benchmarks") or []:
        try:
            queued = benchmark_run_start(
                benchmark=entry["benchmark"],
                config=entry.get("config", {}),
                model=artifact,
                created_by=run.created_by,
            )
        except ApplicationError as error:
            lines.append(f"[loupe] benchmark {entry['benchmark']} not queued: {error.message}\n")
        else:
            lines.append(f"[loupe] benchmark {entry['benchmark']} queued as benchmark run {queued.pk}\n")
    return "".join(lines)
