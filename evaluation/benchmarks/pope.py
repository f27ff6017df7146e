"""POPE: Polling-based Object Probing Evaluation (Li et al., "Evaluating Object Hallucination in Large
Vision-Language Models", EMNLP 2023; AoiDragon/POPE).

Questions "Is there a/an <object> in the image?" with answer "yes" for objects in the image and "no" for objects
that are not, built as the POPE repository's `utils.pope` does: per image, the first ``sample_num`` true objects
each followed by one absent object, chosen by the setting --
- random: any object of the vocabulary;
- popular: the most frequent objects over the images, in order;
- adversarial: the objects that co-occur most often with that true object, in order;
never a true object of the image nor one already asked about, falling back to random when a list runs out. So
each image gets as many "yes" as "no". Images with fewer than ``sample_num`` objects are skipped, as the
repository skips them.

Answers are read as the repository's `evaluate.py` reads them: keep the text before the first ".", drop commas,
split on spaces; "no" if a word is "No", "no" or "not", else "yes". Metrics: accuracy, precision, recall, F1 (with
"yes" as the positive class) and the share of "yes" answers.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SETTINGS: tuple[str, ...] = ("random", "popular", "adversarial")


@dataclass
class PopeConfig:
    """How POPE questions are built."""

    sample_num: int = field(default=3, metadata={"help": "True objects asked about per image (and as many absent)."})
    template: str = field(default="Is there {article} {object} in the image?", metadata={"help": "Question text."})
    seed: int = field(default=0, metadata={"help": "Seed of the random negatives (random setting and fallbacks)."})
    batch_size: int = field(default=8, metadata={"help": "Questions per call of the model in answer_questions."})

    def __post_init__(self):
        if self.sample_num < 1:
            raise ValueError("sample_num must be at least 1")


@dataclass(frozen=True)
class PopeQuestion:
    """One question, as a line of the published files: ``question_id, image, text, label``."""

    question_id: int
    image: str
    text: str
    label: str  # "yes" or "no"
    object: str = ""

    def to_json(self) -> dict:
        return {"question_id": self.question_id, "image": self.image, "text": self.text, "label": self.label}


@dataclass(frozen=True)
class ImageObjects:
    """An image and the distinct objects in it, in the order the annotations list them."""

    image: str
    objects: tuple[str, ...]


@dataclass
class PopeMetrics:
    accuracy: float
    precision: float
    recall: float
    f1: float
    yes_ratio: float
    n: int
    tp: int
    fp: int
    tn: int
    fn: int


# ------------------------------------------------------------------------------------------------- inputs


def images_from_coco_instances(instances: dict) -> list[ImageObjects]:
    """Distinct category names per image of a COCO instances JSON, in annotation order; images by file name."""
    names = {category["id"]: category["name"] for category in instances["categories"]}
    files = {image["id"]: image.get("file_name", str(image["id"])) for image in instances.get("images", [])}
    objects: dict = {}
    for annotation in instances["annotations"]:
        seen = objects.setdefault(annotation["image_id"], {})
        seen.setdefault(names[annotation["category_id"]], None)
    return [ImageObjects(files.get(image_id, str(image_id)), tuple(seen)) for image_id, seen in objects.items()]


def images_from_shapes(scenes: Iterable, *, image_names: Sequence[str] | None = None) -> list[ImageObjects]:
    """Shapes-world scenes as images whose objects are "<colour> <shape>" (e.g. "red circle")."""
    out = []
    for i, scene in enumerate(scenes):
        name = image_names[i] if image_names is not None else f"shapes-{scene.seed}.png"
        out.append(ImageObjects(name, tuple(dict.fromkeys(f"{o.colour} {o.shape}" for o in scene.objects))))
    return out


def shapes_vocabulary() -> list[str]:
    """Every object the shapes world can draw, "<colour> <shape>" (what a shapes "no" may ask about)."""
    from annotation.shapes_world import COLOURS, SHAPES  # pure Pillow module, no Django

    return [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]


def read_questions(path: str | Path) -> list[PopeQuestion]:
    """Read a published POPE file (JSON lines with question_id, image, text, label)."""
    questions = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("label") not in ("yes", "no"):
                raise ValueError(f"{path}:{line_no}: label must be 'yes' or 'no', not {row.get('label')!r}")
            questions.append(PopeQuestion(int(row["question_id"]), row["image"], row["text"], row["label"]))
    return questions


def write_questions(questions: Iterable[PopeQuestion], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for question in questions:
            handle.write(json.dumps(question.to_json()) + "\n")


# ------------------------------------------------------------------------------------------ construction


def object_frequencies(images: Sequence[ImageObjects]) -> list[str]:
    """Objects by the number of images holding them, most frequent first (ties: first seen first)."""
    counts = Counter(obj for image in images for obj in image.objects)
    return [obj for obj, _ in counts.most_common()]


def co_occurrence(images: Sequence[ImageObjects]) -> dict[str, list[str]]:
    """For each object, the other objects by how many images hold both, most first (ties: first seen first)."""
    counts: dict[str, Counter] = {}
    for image in images:
        for obj in image.objects:
            row = counts.setdefault(obj, Counter())
            for other in image.objects:
                if other != obj:
                    row[other] += 1
    return {obj: [other for other, _ in row.most_common()] for obj, row in counts.items()}


def _question_text(template: str, obj: str) -> str:
    return template.format(article="an" if obj[:1] in "aeiou" else "a", object=obj)


def build_questions(
    images: Sequence[ImageObjects],
    setting: str,
    config: PopeConfig | None = None,
    *,
    vocabulary: Sequence[str] = (),
) -> list[PopeQuestion]:
    """POPE questions in one setting (see the module docstring); ids count from 1 as in the published files.

    ``vocabulary`` adds objects no image holds to those a "no" may ask about (after the images' objects, in the
    given order): a world whose whole vocabulary is known (the shapes world's colour x shape pairs) asks about
    objects absent from every image, which a handful of images alone cannot offer. COCO-built questions leave it
    empty, as the repository does.
    """
    config = config or PopeConfig()
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {', '.join(SETTINGS)}, not {setting!r}")
    images = [image for image in images if len(image.objects) >= config.sample_num]
    vocabulary = list(dict.fromkeys([*object_frequencies(images), *vocabulary]))
    together = co_occurrence(images) if setting == "adversarial" else {}
    rng = random.Random(config.seed)
    questions: list[PopeQuestion] = []

    def ask(image: ImageObjects, obj: str, label: str) -> None:
        text = _question_text(config.template, obj)
        questions.append(PopeQuestion(len(questions) + 1, image.image, text, label, obj))

    for image in images:
        present = set(image.objects)
        asked: set[str] = set()
        for positive in image.objects[: config.sample_num]:
            asked.add(positive)
            ask(image, positive, "yes")
            candidates = vocabulary if setting == "popular" else together.get(positive, [])
            negative = None
            if setting != "random":
                negative = next((o for o in candidates if o not in present and o not in asked), None)
            if negative is None:
                pool = [o for o in vocabulary if o not in present and o not in asked]
                if not pool:
                    raise ValueError(f"image {image.image!r}: no object left to ask about as a 'no'")
                negative = rng.choice(pool)
            asked.add(negative)
            ask(image, negative, "no")
    return questions


# ----------------------------------------------------------------------------------------------- scoring


def parse_answer(text: str) -> str:
    """ "yes" or "no" as POPE's evaluate.py reads an answer."""
    if "." in text:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def pope_metrics(predictions: Sequence[str], labels: Sequence[str]) -> PopeMetrics:
    """Metrics from parsed predictions and labels ("yes"/"no"); "yes" is the positive class.

    Precision (or recall, F1) with nothing to divide by is 0 rather than the reference's ZeroDivisionError.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        raise ValueError("no answers to score")
    tp = fp = tn = fn = 0
    for pred, label in zip(predictions, labels, strict=True):
        if pred == "yes":
            tp += label == "yes"
            fp += label != "yes"
        else:
            tn += label != "yes"
            fn += label == "yes"
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PopeMetrics(
        accuracy=(tp + tn) / len(labels),
        precision=precision,
        recall=recall,
        f1=f1,
        yes_ratio=(tp + fp) / len(labels),
        n=len(labels),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
    )


def score_answers(questions: Sequence[PopeQuestion], answers: Sequence[str]) -> PopeMetrics:
    """Parse raw model answers (in question order) and score them against the questions' labels."""
    return pope_metrics([parse_answer(a) for a in answers], [q.label for q in questions])


def answer_questions(
    generate_fn: Callable[[list[PopeQuestion]], list[str]], questions: Sequence[PopeQuestion], batch_size: int = 8
) -> list[str]:
    """Ask a model every question, ``batch_size`` at a time; ``generate_fn`` returns one answer per question."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    answers: list[str] = []
    for start in range(0, len(questions), batch_size):
        batch = list(questions[start : start + batch_size])
        out = list(generate_fn(batch))
        if len(out) != len(batch):
            raise ValueError(f"generate_fn returned {len(out)} answers for {len(batch)} questions")
        answers.extend(out)
    return answers
