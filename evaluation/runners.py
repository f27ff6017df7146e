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

BENCHMARKS = ("pope", "chair", "captions")
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
    image_ids = [c.image_id for c in inputs]
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
    examples = [
        {
            "key": str(c.image_id),
            "input": {"image_id": c.image_id},
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
        for c in result.captions
    ]
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


def pope_shapes_questions(*, n_images: int, seed: int, image_dir: Path, settings: Sequence[str]) -> dict[str, list]:
    """POPE questions over ``n_images`` shapes-world scenes (PNGs written into ``image_dir``), per setting."""
    from annotation.shapes_world import scene_generate, scene_render

    image_dir.mkdir(parents=True, exist_ok=True)
    scenes, names = [], []
    for i in range(n_images):
        scene = scene_generate(seed=seed * 1_000_003 + i)
        names.append(f"pope-shapes-{seed}-{i}.png")
        scene_render(scene).save(image_dir / names[-1])
        scenes.append(scene)
    objects = pope_core.images_from_shapes(scenes, image_names=names)
    config = pope_core.PopeConfig(sample_num=1, seed=seed)  # a shapes scene may hold a single object
    try:
        return {setting: pope_core.build_questions(objects, setting, config) for setting in settings}
    except ValueError as exc:  # POPE's vocabulary is the objects of the scenes drawn: too few scenes, too few "no"s
        raise InputError(f"shapes world: {exc}; draw more images (n_images)") from exc


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
