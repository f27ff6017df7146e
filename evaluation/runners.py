"""Benchmarks run end to end from a config: read the inputs, ask the model, score, return summary and examples.

What `manage.py benchmark` and a `BenchmarkRun` in the worker share. Django-free; torch is imported only when a
model is loaded (`model_answerer`), so the web process can import this module to validate a config.

Every input error is an `InputError` naming the file (and the field or line) at fault; the CLI turns it into a
`CommandError` and a run records it as its failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evaluation.benchmarks import chair as chair_core
from evaluation.benchmarks import pope as pope_core

BENCHMARKS = ("pope", "chair", "captions", "object_halbench", "mmhal", "shr")
SHAPES_HELD_OUT_OFFSET = 500_000
DEFAULT_SYNONYMS = Path(__file__).resolve().parents[2] / "shared" / "data" / "chair" / "coco_synonyms.txt"


class InputError(Exception):
    """A benchmark input (file, folder, field) that cannot be used; the message names it."""


class Cancelled(Exception):  # noqa: N818 (a signal, not a failure)
    """Raised between batches when the caller asked to stop."""


@dataclass
class BenchmarkOutcome:
    summary: dict[str, Any]  # the headline metrics (per setting for POPE)
    examples: list[dict[str, Any]] = field(default_factory=list)  # {"key", "input", "answer", "detail"}


Progress = Callable[[int, int], None]  # (done, total); may raise Cancelled


def _noop(done: int, total: int) -> None:
    return None


def _existing_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file {path} does not exist")
    return path


# ------------------------------------------------------------------------------------------------- CHAIR


def chair_run(
    *, captions: str, annotations: Sequence[str], synonyms: str | None = None, progress: Progress = _noop
) -> BenchmarkOutcome:
    """CHAIR over a JSON list of {"image_id", "caption"} with COCO instances/captions files as ground truth."""
    synonyms_path = _existing_file(synonyms or DEFAULT_SYNONYMS, "--synonyms")
    if not annotations:
        raise InputError("give at least one --annotations file (COCO instances or captions JSON)")
    captions_path = _existing_file(captions, "--captions")
    try:
        inputs = chair_core.read_caption_inputs(captions_path)
    except json.JSONDecodeError as exc:
        raise InputError(f"--captions file {captions}: not JSON ({exc})") from exc
    except ValueError as exc:
        raise InputError(f"--captions file {exc}") from exc
    matcher = chair_core.ObjectMatcher.from_file(synonyms_path)
    truth = _coco_truth(annotations, matcher, [c.image_id for c in inputs])
    # An image no annotations file mentions has no objects, as in the reference (it starts every captioned image
    # with an empty set), so everything its caption names counts as hallucinated.
    result = chair_core.chair_score(inputs, truth, matcher)
    progress(len(inputs), len(inputs))
    summary = {
        "CHAIR_s": result.chair_s,
        "CHAIR_i": result.chair_i,
        "n_captions": result.n_captions,
        "n_mentions": result.n_mentions,
        "n_hallucinated_mentions": result.n_hallucinated_mentions,
    }
    examples = _chair_examples(result.captions)
    return BenchmarkOutcome(summary=summary, examples=examples)


# ------------------------------------------------------------------------------------------ caption metrics


def captions_run(
    *, predictions: str, references: str, meteor: bool = True, progress: Progress = _noop
) -> BenchmarkOutcome:
    """coco-caption BLEU-1..4, ROUGE-L and METEOR (corpus and per caption)."""
    from evaluation.benchmarks.captions import CaptionMetricsConfig, caption_metrics, read_captions

    def read(path: str, what: str) -> list[list[str]]:
        existing = _existing_file(path, what)
        try:
            return read_captions(existing)
        except UnicodeDecodeError as exc:
            raise InputError(f"{what} file {path}: not UTF-8 text") from exc
        except ValueError as exc:
            raise InputError(f"{what} file {exc}") from exc

    predicted = read(predictions, "--predictions")
    refs = read(references, "--references")
    several = next((i for i, p in enumerate(predicted) if len(p) != 1), None)
    if several is not None:
        raise InputError(
            f"--predictions file {predictions}: item {several + 1} has {len(predicted[several])} captions, not 1"
        )
    if len(predicted) != len(refs):
        raise InputError(
            f"--predictions file {predictions} has {len(predicted)} captions but --references file {references} "
            f"has {len(refs)} items"
        )
    if not predicted:
        raise InputError(f"--predictions file {predictions} holds no captions")
    try:
        metrics = caption_metrics([p[0] for p in predicted], refs, CaptionMetricsConfig(meteor=meteor))
    except FileNotFoundError as exc:
        raise InputError(f"caption metrics need Java on PATH ({exc})") from exc
    progress(len(predicted), len(predicted))
    examples = [
        {"key": str(i + 1), "input": {"references": r}, "answer": p[0], "detail": scores, "hallucinated": None}
        for i, (p, r, scores) in enumerate(zip(predicted, refs, metrics.per_caption, strict=True))
    ]
    return BenchmarkOutcome(summary=dict(metrics.corpus), examples=examples)


# --------------------------------------------------------------------------------------------------- POPE


def pope_setting_name(path: str | Path) -> str:
    """The setting a published file holds, from its name (coco_pope_adversarial... -> adversarial), else its stem."""
    match = re.search(r"(random|popular|adversarial)", Path(path).name)
    return match.group(1) if match else Path(path).name.split(".")[0]


def pope_read(*, questions: Sequence[str], images: str, limit: int | None = None) -> dict[str, list]:
    """Setting -> questions of each file (first ``limit`` of each), every image checked to exist."""
    image_dir = Path(images)
    if not image_dir.is_dir():
        raise InputError(f"--images folder {image_dir} does not exist")
    if not questions:
        raise InputError("give at least one --questions file (JSON lines question_id, image, text, label)")
    out: dict[str, list] = {}
    for path in questions:
        existing = _existing_file(path, "--questions")
        try:
            rows = pope_core.read_questions(existing)
        except json.JSONDecodeError as exc:
            raise InputError(f"--questions file {path}: a line is not JSON ({exc.msg})") from exc
        except KeyError as exc:
            raise InputError(f"--questions file {path}: a line lacks field {exc.args[0]!r}") from exc
        except ValueError as exc:
            raise InputError(f"--questions file {exc}") from exc
        rows = rows[:limit] if limit else rows
        if not rows:
            raise InputError(f"--questions file {path} holds no questions")
        for row in rows:
            if not (image_dir / row.image).is_file():
                raise InputError(
                    f"--questions file {path}: question {row.question_id} asks about image {row.image}, "
                    f"not found in {image_dir}"
                )
        name = pope_setting_name(path)
        if name in out:
            name = Path(path).name
        out[name] = rows
    return out


def shapes_scenes(*, n_images: int, seed: int, image_dir: Path, prefix: str) -> list[tuple[str, Any]]:
    """``n_images`` held-out shapes-world scenes as (PNG name, scene), the PNGs written into ``image_dir``.

    Held out: scene seeds start at ``SHAPES_HELD_OUT_OFFSET``, which `shapes_world_items` (the scenes Loupe's data
    and training sets are drawn from, seeds ``seed * 1_000_003 + i``) reaches only past 500,000 items.
    """
    from annotation.shapes_world import scene_generate, scene_render

    if n_images < 1:
        raise InputError("shapes world: draw at least 1 image (n_images)")
    image_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n_images):
        scene = scene_generate(seed=seed * 1_000_003 + SHAPES_HELD_OUT_OFFSET + i)
        name = f"{prefix}-shapes-{seed}-{i}.png"
        scene_render(scene).save(image_dir / name)
        out.append((name, scene))
    return out


def pope_shapes_questions(*, n_images: int, seed: int, image_dir: Path, settings: Sequence[str]) -> dict[str, list]:
    """POPE questions over ``n_images`` shapes-world scenes (PNGs written into ``image_dir``), per setting.

    A "no" may ask about any colour x shape pair of the world, not only the objects of the scenes drawn.
    """
    drawn = shapes_scenes(n_images=n_images, seed=seed, image_dir=image_dir, prefix="pope")
    objects = pope_core.images_from_shapes([scene for _, scene in drawn], image_names=[name for name, _ in drawn])
    config = pope_core.PopeConfig(sample_num=1, seed=seed)  # a shapes scene may hold a single object
    vocabulary = pope_core.shapes_vocabulary()
    return {setting: pope_core.build_questions(objects, setting, config, vocabulary=vocabulary) for setting in settings}


def model_answerer(*, model: str, image_dir: str | Path, max_new_tokens: int = 16) -> Callable[[list], list[str]]:
    """A `generate_fn` for `pope.answer_questions`: greedy answers of the model at ``model`` (worker side: torch)."""
    from PIL import Image

    from training.core import has_chat_template, is_vision_model
    from training.generation import answer_prefix_of, load_policy, sample_answers

    if not Path(model).is_dir():
        raise InputError(f"--model folder {model} does not exist")
    policy, processing_class = load_policy(model)
    vision = is_vision_model(model)
    prefix = answer_prefix_of(model)
    use_template = has_chat_template(processing_class)
    folder = Path(image_dir)

    def generate(questions: list) -> list[str]:
        images = None
        if vision:
            images = []
            for question in questions:
                with Image.open(folder / question.image) as image:
                    images.append([image.convert("RGB")])
        answers = sample_answers(
            policy,
            processing_class,
            prompts=[q.text for q in questions],
            images=images,
            max_new_tokens=max_new_tokens,
            answer_prefix=prefix,
            use_template=use_template,
            do_sample=False,
        )
        return [a[0] for a in answers]

    return generate


def pope_run(
    *,
    questions: dict[str, list],
    generate_fn: Callable[[list], list[str]],
    batch_size: int = 8,
    progress: Progress = _noop,
) -> BenchmarkOutcome:
    """Answer every setting's questions in batches and score each setting (POPE's parse, "yes" positive)."""
    total = sum(len(rows) for rows in questions.values())
    done = 0
    summary: dict[str, Any] = {}
    examples: list[dict[str, Any]] = []
    for setting, rows in questions.items():
        answers: list[str] = []
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            answers += pope_core.answer_questions(generate_fn, batch, batch_size)
            done += len(batch)
            progress(done, total)
        summary[setting] = asdict(pope_core.score_answers(rows, answers))
        for question, answer in zip(rows, answers, strict=True):
            parsed = pope_core.parse_answer(answer)
            examples.append(
                {
                    "key": f"{setting}/{question.question_id}",
                    "input": {**question.to_json(), "setting": setting},
                    "answer": answer,
                    "detail": {"parsed": parsed, "label": question.label, "correct": parsed == question.label},
                    # A "yes" to an absent object is POPE's hallucination.
                    "hallucinated": parsed == "yes" and question.label == "no",
                }
            )
    return BenchmarkOutcome(summary=summary, examples=examples)


# ------------------------------------------------------------------------------ models that describe images


@dataclass(frozen=True)
class ImagePrompt:
    """What a model is asked about one image (the shape `model_answerer` reads: ``.image`` and ``.text``)."""

    image: str
    text: str


DESCRIBE_PROMPT = "Describe this image in detail."  # Object HalBench / SHR: detailed descriptions
SHAPES_DESCRIBE_PROMPT = "Describe the image."  # the shapes world's own first question (shapes_world.QUESTIONS)


def answers_in_batches(
    *,
    prompts: Sequence[Any],
    answer_fn: Callable[[list], list[str]],
    batch_size: int,
    progress: Progress,
    done: int = 0,
    total: int | None = None,
) -> list[str]:
    """The model's answers to ``prompts`` in batches, progress counted on after ``done`` out of ``total``."""
    total = len(prompts) if total is None else total
    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = list(prompts[start : start + batch_size])
        out = list(answer_fn(batch))
        if len(out) != len(batch):
            raise ValueError(f"the model gave {len(out)} answers for {len(batch)} prompts")
        answers += out
        progress(done + len(answers), total)
    return answers


def shapes_described(
    *,
    n_images: int,
    seed: int,
    image_dir: Path | None,
    prefix: str,
    answer_fn: Callable[[list], list[str]] | None,
    prompt: str,
    batch_size: int,
    progress: Progress,
    benchmark: str = "CHAIR",
) -> tuple[list[tuple[str, Any]], list[str]]:
    """Held-out shapes-world scenes (name, scene) drawn into ``image_dir`` and the model's description of each;
    InputError without a model (or a folder for the images)."""
    if answer_fn is None or image_dir is None:
        raise InputError(f"{benchmark} on the shapes world needs a model (--model)")
    drawn = shapes_scenes(n_images=n_images, seed=seed, image_dir=image_dir, prefix=prefix)
    answers = answers_in_batches(
        prompts=[ImagePrompt(name, prompt) for name, _ in drawn],
        answer_fn=answer_fn,
        batch_size=batch_size,
        progress=progress,
    )
    return drawn, answers


def _chair_examples(captions: Sequence[chair_core.CaptionChair], images: dict | None = None) -> list[dict[str, Any]]:
    return [
        {
            "key": str(c.image_id),
            "input": {"image_id": c.image_id, **({"image": images[c.image_id]} if images else {})},
            "answer": c.caption,
            "detail": {
                "mentioned": [list(m) for m in c.mentioned],
                "hallucinated": [list(m) for m in c.hallucinated],
                "ground_truth": c.ground_truth,
                "CHAIR_s": c.chair_s,
                "CHAIR_i": c.chair_i,
            },
            "hallucinated": bool(c.chair_s),
        }
        for c in captions
    ]


def chair_shapes_run(
    *,
    n_images: int,
    seed: int,
    image_dir: Path,
    answer_fn: Callable[[list], list[str]],
    batch_size: int = 8,
    prompt: str = SHAPES_DESCRIBE_PROMPT,
    progress: Progress = _noop,
) -> BenchmarkOutcome:
    """CHAIR in the shapes world: the model describes held-out scenes; an object is a "<colour> <shape>" pair."""
    drawn, answers = shapes_described(
        n_images=n_images,
        seed=seed,
        image_dir=image_dir,
        prefix="chair",
        answer_fn=answer_fn,
        prompt=prompt,
        batch_size=batch_size,
        progress=progress,
    )
    inputs = [chair_core.CaptionInput(name, answer) for (name, _), answer in zip(drawn, answers, strict=True)]
    result = chair_core.shapes_chair(inputs, dict(drawn))
    summary = {
        "CHAIR_s": result.chair_s,
        "CHAIR_i": result.chair_i,
        "n_captions": result.n_captions,
        "n_mentions": result.n_mentions,
        "n_hallucinated_mentions": result.n_hallucinated_mentions,
        "vocabulary": "shapes-world",
    }
    return BenchmarkOutcome(summary=summary, examples=_chair_examples(result.captions, {n: n for n, _ in drawn}))


# ------------------------------------------------------------------------------------------ Object HalBench


def _halbench_summary(result: Any) -> dict[str, Any]:
    return {
        "response_rate": result.response_rate,
        "mention_rate": result.mention_rate,
        "n_responses": result.n_responses,
        "n_mentions": result.n_mentions,
        "n_hallucinated_mentions": result.n_hallucinated_mentions,
    }


def _read_json(path: str | Path, what: str) -> Any:
    existing = _existing_file(path, what)
    try:
        return json.loads(existing.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} file {path}: not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} file {path}: not JSON ({exc})") from exc


def _coco_truth(annotations: Sequence[str], matcher: chair_core.ObjectMatcher, image_ids: list) -> dict:
    truth: dict = {}
    for path in annotations:
        annotations_path = _existing_file(path, "--annotations")
        try:
            part = chair_core.ground_truth_from_files([annotations_path], matcher, image_ids)
        except json.JSONDecodeError as exc:
            raise InputError(f"--annotations file {path}: not JSON ({exc})") from exc
        except KeyError as exc:
            raise InputError(f"--annotations file {path}: missing field {exc.args[0]!r}") from exc
        except (TypeError, AttributeError, IndexError) as exc:
            raise InputError(f"--annotations file {path}: not a COCO instances or captions file ({exc})") from exc
        for image_id, objects in part.items():
            truth.setdefault(image_id, set()).update(objects)
    return truth


def object_halbench_run(
    *,
    annotations: Sequence[str] = (),
    responses: str | None = None,
    images: str | None = None,
    answer_fn: Callable[[list], list[str]] | None = None,
    shapes: dict | None = None,
    shapes_dir: Path | None = None,
    synonyms: str | None = None,
    prompt: str = DESCRIBE_PROMPT,
    batch_size: int = 8,
    limit: int | None = None,
    unique_mentions: bool = False,
    progress: Progress = _noop,
) -> BenchmarkOutcome:
    """Object HalBench's response- and mention-level rates over detailed descriptions, from one of:

    - ``responses`` (JSON list of {"image_id", "caption"}) with COCO ``annotations``;
    - a model (``answer_fn``) describing the images of COCO instances ``annotations`` found in ``images``;
    - a model describing held-out shapes-world scenes (``shapes``: {"n_images", "seed"}), ground truth known.
    """
    from evaluation.benchmarks.object_halbench import ObjectHalBenchConfig, object_halbench_score

    config = ObjectHalBenchConfig(unique_mentions=unique_mentions)
    if shapes is not None:
        drawn, answers = shapes_described(
            n_images=shapes["n_images"],
            seed=shapes.get("seed", 0),
            image_dir=shapes_dir,
            prefix="halbench",
            answer_fn=answer_fn,
            prompt=prompt,
            batch_size=batch_size,
            progress=progress,
            benchmark="Object HalBench",
        )
        inputs = [chair_core.CaptionInput(name, answer) for (name, _), answer in zip(drawn, answers, strict=True)]
        result = chair_core.shapes_chair(inputs, dict(drawn))
        n_mentions, n_bad = result.n_mentions, result.n_hallucinated_mentions
        if unique_mentions:
            n_mentions = sum(len({obj for _, obj in c.mentioned}) for c in result.captions)
            n_bad = sum(len({obj for _, obj in c.hallucinated}) for c in result.captions)
        summary = {
            "response_rate": result.chair_s,
            "mention_rate": n_bad / n_mentions if n_mentions else 0.0,
            "n_responses": result.n_captions,
            "n_mentions": n_mentions,
            "n_hallucinated_mentions": n_bad,
            "vocabulary": "shapes-world",
        }
        return BenchmarkOutcome(summary=summary, examples=_chair_examples(result.captions, {n: n for n, _ in drawn}))
    if not annotations:
        raise InputError("give at least one --annotations file (COCO instances or captions JSON)")
    matcher = chair_core.ObjectMatcher.from_file(_existing_file(synonyms or DEFAULT_SYNONYMS, "--synonyms"))
    image_names: dict | None = None
    if responses is not None:
        try:
            inputs = chair_core.read_caption_inputs(_existing_file(responses, "--responses"))
        except json.JSONDecodeError as exc:
            raise InputError(f"--responses file {responses}: not JSON ({exc})") from exc
        except ValueError as exc:
            raise InputError(f"--responses file {exc}") from exc
    else:
        if answer_fn is None or images is None:
            raise InputError("give --responses FILE, or --model PATH with --images DIR (or --shapes N)")
        instances = _read_json(annotations[0], "--annotations")
        listed = instances.get("images") if isinstance(instances, dict) else None
        if not isinstance(listed, list) or not listed:
            raise InputError(f"--annotations file {annotations[0]}: no 'images' list to describe")
        try:
            image_names = {image["id"]: image["file_name"] for image in listed}
        except (KeyError, TypeError) as exc:
            raise InputError(f"--annotations file {annotations[0]}: an image lacks 'id' or 'file_name'") from exc
        if limit:
            image_names = dict(list(image_names.items())[:limit])
        for name in image_names.values():
            if not (Path(images) / name).is_file():
                raise InputError(f"--images folder {images}: image {name} not found")
        answers = answers_in_batches(
            prompts=[ImagePrompt(name, prompt) for name in image_names.values()],
            answer_fn=answer_fn,
            batch_size=batch_size,
            progress=progress,
        )
        inputs = [
            chair_core.CaptionInput(image_id, answer) for image_id, answer in zip(image_names, answers, strict=True)
        ]
    truth = _coco_truth(annotations, matcher, [c.image_id for c in inputs])
    result = object_halbench_score(inputs, truth, matcher, config)
    progress(len(inputs), len(inputs))
    return BenchmarkOutcome(summary=_halbench_summary(result), examples=_chair_examples(result.responses, image_names))


# ------------------------------------------------------------------------------------------------- judges


@dataclass
class JudgeSettings:
    """The judge model, reached through the AI labeler's backends (``annotation.labeler.backends``)."""

    kind: str = "local"  # "local": ``model`` is a folder; "openai": the served model's name at ``base_url``
    model: str = ""
    base_url: str = ""
    api_key: str = ""
    max_new_tokens: int = 512
    batch_size: int = 8


Judge = Callable[[list[str]], list[str]]  # prompts -> the judge's replies, in order


def judge_open(settings: JudgeSettings) -> tuple[Judge, str]:
    """A judge (greedy replies, no image: MMHal's and HA-DPO's judges read text) and the judge model's name."""
    from annotation.labeler.backends import BACKEND_KINDS, LabelerBackendError, backend_open

    if settings.kind not in BACKEND_KINDS:
        raise InputError(f"judge kind must be one of {', '.join(BACKEND_KINDS)}, not {settings.kind!r}")
    if not settings.model:
        raise InputError("give the judge model (--judge-model: a folder, or the served model's name)")
    if settings.kind == "local" and not Path(settings.model).is_dir():
        raise InputError(f"--judge-model folder {settings.model} does not exist")
    if settings.kind == "openai" and not settings.base_url:
        raise InputError("an OpenAI-compatible judge needs --judge-url (the server's base URL, e.g. http://host/v1)")
    backend = backend_open(
        kind=settings.kind,
        model=settings.model,
        base_url=settings.base_url,
        api_key=settings.api_key,
        batch_size=settings.batch_size,
    )

    def judge(prompts: list[str]) -> list[str]:
        try:
            return backend.generate(prompts=prompts, images=None, max_new_tokens=settings.max_new_tokens)
        except LabelerBackendError as exc:
            raise InputError(f"the judge failed: {exc}") from exc

    return judge, backend.name


def judged_in_batches(
    *, prompts: Sequence[str], judge: Judge, batch_size: int, progress: Progress, done: int, total: int
) -> dict[str, str]:
    """Prompt -> reply for every distinct prompt, asked ``batch_size`` at a time."""
    distinct = list(dict.fromkeys(prompts))
    replies: dict[str, str] = {}
    for start in range(0, len(distinct), batch_size):
        batch = distinct[start : start + batch_size]
        out = judge(batch)
        if len(out) != len(batch):
            raise ValueError(f"the judge gave {len(out)} replies for {len(batch)} prompts")
        replies.update(zip(batch, out, strict=True))
        progress(done + start + len(batch), total)
    return replies


# --------------------------------------------------------------------------------------------------- MMHal


def mmhal_read(path: str, *, limit: int | None = None) -> list[dict[str, Any]]:
    """MMHal-Bench's response_template.json: a list of {"question", "gt_answer", "image_content", ...}."""
    rows = _read_json(path, "--questions")
    if not isinstance(rows, list) or not rows:
        raise InputError(f"--questions file {path}: not a non-empty JSON list of questions")
    rows = rows[:limit] if limit else rows
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(f"--questions file {path}: item {i + 1} is not an object")
        for key in ("question", "gt_answer", "image_content"):
            if key not in row:
                raise InputError(f"--questions file {path}: item {i + 1} lacks field {key!r}")
        if not isinstance(row["image_content"], list | str):
            raise InputError(f"--questions file {path}: item {i + 1}: image_content must be a list of labels")
    return rows


def _image_name(row: dict[str, Any]) -> str:
    """The image file of an item: its "image", else the last part of MMHal's "image_src" URL."""
    name = row.get("image") or str(row.get("image_src", "")).rsplit("/", 1)[-1]
    return str(name)


def mmhal_run(
    *,
    questions: str,
    judge: Judge,
    judge_name: str,
    answer_fn: Callable[[list], list[str]] | None = None,
    images: str | None = None,
    prompt_version: str | None = None,
    batch_size: int = 8,
    judge_batch_size: int = 8,
    limit: int | None = None,
    progress: Progress = _noop,
) -> BenchmarkOutcome:
    """MMHal: the model answers each question about its image (or the file's "model_answer" is judged), the judge
    rates each answer 0-6 with the versioned rubric; score, hallucination rate (< 3), the prompt version stored."""
    from evaluation.benchmarks import mmhal as mmhal_core

    try:
        config = mmhal_core.MMHalConfig(prompt_version=prompt_version or mmhal_core.JUDGE_PROMPT_VERSION)
    except ValueError as exc:
        raise InputError(f"--prompt-version: {exc}") from exc
    rows = mmhal_read(questions, limit=limit)
    total = len(rows) * (2 if answer_fn else 1)
    if answer_fn is not None:
        if not images or not Path(images).is_dir():
            raise InputError(f"--images folder {images} does not exist")
        for i, row in enumerate(rows):
            if not (Path(images) / _image_name(row)).is_file():
                raise InputError(f"--questions file {questions}: item {i + 1}'s image {_image_name(row)!r} not found")
        answers = answers_in_batches(
            prompts=[ImagePrompt(_image_name(row), str(row["question"])) for row in rows],
            answer_fn=answer_fn,
            batch_size=batch_size,
            progress=progress,
            total=total,
        )
    else:
        missing = next((i for i, row in enumerate(rows) if not isinstance(row.get("model_answer"), str)), None)
        if missing is not None:
            raise InputError(
                f"--questions file {questions}: item {missing + 1} has no 'model_answer'; give --model to answer"
            )
        answers = [row["model_answer"] for row in rows]
    items = [
        mmhal_core.MMHalItem(
            image_content=tuple(row["image_content"])
            if isinstance(row["image_content"], list)
            else (row["image_content"],),
            question=str(row["question"]),
            gt_answer=str(row["gt_answer"]),
            model_answer=answer,
            question_type=str(row.get("question_type", "")),
        )
        for row, answer in zip(rows, answers, strict=True)
    ]
    prompts = [mmhal_core.judge_prompt(item, config.prompt_version) for item in items]
    replies = judged_in_batches(
        prompts=prompts,
        judge=judge,
        batch_size=judge_batch_size,
        progress=progress,
        done=total - len(rows),
        total=total,
    )
    result = mmhal_core.mmhal_evaluate(items, lambda prompt: replies[prompt], config)
    summary = {
        "score": result.score,
        "hallucination_rate": result.hallucination_rate,
        "n": len(items),
        "unparsed": result.unparsed,
        "score_by_type": result.by_type,
        "judge_model": judge_name,
        "judge_prompt_version": result.prompt_version,
    }
    examples = []
    for i, (row, item, rating, reply) in enumerate(zip(rows, items, result.ratings, result.judge_replies, strict=True)):
        parsed = mmhal_core.parse_rating(reply)
        examples.append(
            {
                "key": str(row.get("image_id", i + 1)),
                "input": {
                    "text": item.question,
                    "image": _image_name(row),
                    "gt_answer": item.gt_answer,
                    "image_content": list(item.image_content),
                    "question_type": item.question_type,
                },
                "answer": item.model_answer,
                "detail": {
                    "rating": rating,
                    "rating_found": parsed is not None,
                    "judge_reply": reply,
                    "judge_prompt_version": result.prompt_version,
                },
                "hallucinated": rating < mmhal_core.HALLUCINATION_BELOW,
            }
        )
    return BenchmarkOutcome(summary=summary, examples=examples)


# ----------------------------------------------------------------------------------------------------- SHR


def _text_of(value: Any) -> str:
    return "\n".join(str(v) for v in value) if isinstance(value, list) else str(value or "")


def _shr_examples(names: Sequence[str], prompt: str, result: Any) -> list[dict[str, Any]]:
    examples = []
    for i, (name, description) in enumerate(zip(names, result.descriptions, strict=True)):
        classes = description.classes
        judged = [c for c in classes if c is not None]
        bad = [s for s, c in zip(description.sentences, classes, strict=True) if c == "hallucination"]
        examples.append(
            {
                "key": str(i + 1),
                "input": {"image": name, "text": prompt},
                "answer": ". ".join(description.sentences) + ("." if description.sentences else ""),
                "detail": {
                    "sentences": [[s, c] for s, c in zip(description.sentences, classes, strict=True)],
                    "hallucinated": [[s, s] for s in bad],
                    "judge_reply": description.judge_reply,
                },
                "hallucinated": bool(bad) if judged else None,
            }
        )
    return examples


def _shr_summary(result: Any, n: int) -> dict[str, Any]:
    return {
        "shr": result.shr,
        "hal_words_ratio": result.hal_words_ratio,
        "n_descriptions": n,
        "n_sentences": result.n_sentences,
        "n_hallucinated": result.n_hallucinated,
        "n_unjudged": result.n_unjudged,
    }


def shr_run(
    *,
    answer_fn: Callable[[list], list[str]] | None = None,
    items: str | None = None,
    images: str | None = None,
    judge: Judge | None = None,
    judge_name: str = "",
    shapes: dict | None = None,
    shapes_dir: Path | None = None,
    prompt: str = DESCRIBE_PROMPT,
    prompt_version: str | None = None,
    batch_size: int = 8,
    judge_batch_size: int = 8,
    limit: int | None = None,
    progress: Progress = _noop,
) -> BenchmarkOutcome:
    """SHR: the share of hallucinated sentences in detailed descriptions.

    - ``items``: JSON list of {"image", "regions" (list of "[x1, y1, x2, y2]: phrase" or one text), "facts"
      (optional), "description" (optional: judged as is when no model answers)}; a judge model classes each
      sentence with HA-DPO's prompt (version stored);
    - ``shapes`` ({"n_images", "seed"}): the model describes held-out shapes-world scenes, judged against their
      ground truth (no judge model).
    """
    from evaluation.benchmarks import shr as shr_core

    if shapes is not None:
        drawn, answers = shapes_described(
            n_images=shapes["n_images"],
            seed=shapes.get("seed", 0),
            image_dir=shapes_dir,
            prefix="shr",
            answer_fn=answer_fn,
            prompt=prompt,
            batch_size=batch_size,
            progress=progress,
            benchmark="SHR",
        )
        result = shr_core.shr_shapes(answers, [scene for _, scene in drawn])
        summary = {**_shr_summary(result, len(drawn)), "judge_model": "", "judge_prompt_version": result.prompt_version}
        return BenchmarkOutcome(summary=summary, examples=_shr_examples([n for n, _ in drawn], prompt, result))
    if items is None:
        raise InputError("give --items FILE (images with region descriptions), or --shapes N with --model")
    if judge is None:
        raise InputError("SHR over annotated images needs a judge model (--judge-model)")
    try:
        config = shr_core.SHRConfig(prompt_version=prompt_version or shr_core.JUDGE_PROMPT_VERSION)
    except ValueError as exc:
        raise InputError(f"--prompt-version: {exc}") from exc
    rows = _read_json(items, "--items")
    if not isinstance(rows, list) or not rows:
        raise InputError(f"--items file {items}: not a non-empty JSON list of images")
    rows = rows[:limit] if limit else rows
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "regions" not in row:
            raise InputError(f"--items file {items}: item {i + 1} lacks field 'regions'")
        if answer_fn is None and not isinstance(row.get("description"), str):
            raise InputError(f"--items file {items}: item {i + 1} has no 'description'; give --model to describe")
    names = [_image_name(row) for row in rows]
    total = len(rows) * (2 if answer_fn else 1)
    if answer_fn is not None:
        if not images or not Path(images).is_dir():
            raise InputError(f"--images folder {images} does not exist")
        for i, name in enumerate(names):
            if not name or not (Path(images) / name).is_file():
                raise InputError(f"--items file {items}: item {i + 1}'s image {name!r} not found in {images}")
        descriptions = answers_in_batches(
            prompts=[ImagePrompt(name, prompt) for name in names],
            answer_fn=answer_fn,
            batch_size=batch_size,
            progress=progress,
            total=total,
        )
    else:
        descriptions = [row["description"] for row in rows]
    regions = [_text_of(row["regions"]) for row in rows]
    facts = [_text_of(row.get("facts", "")) for row in rows]
    template = shr_core.JUDGE_PROMPTS[config.prompt_version]
    # The prompts shr_judged sends, asked in batches beforehand; shr_judged then reads the replies back.
    prompts = [
        template.format(r, f, shr_core.numbered_sentences(shr_core.split_sentences(d)))
        for d, r, f in zip(descriptions, regions, facts, strict=True)
    ]
    replies = judged_in_batches(
        prompts=prompts,
        judge=judge,
        batch_size=judge_batch_size,
        progress=progress,
        done=total - len(rows),
        total=total,
    )
    result = shr_core.shr_judged(descriptions, regions, lambda p: replies[p], config, factual=facts)
    summary = {
        **_shr_summary(result, len(rows)),
        "judge_model": judge_name,
        "judge_prompt_version": config.prompt_version,
    }
    return BenchmarkOutcome(summary=summary, examples=_shr_examples(names, prompt, result))
