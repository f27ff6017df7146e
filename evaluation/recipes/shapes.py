"""The shapes world as recipe data: scenes written as a Loupe JSONL import, imported into a project through the
import service, and a simulated annotator who corrects an answer against a scene's ground truth."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from annotation.shapes_world import (
    COLOURS,
    COUNT_WORDS,
    SHAPE_SYNONYMS,
    scene_caption,
    scene_from_dict,
    shapes_world_items,
)

_WORD = re.compile(r"\S+")
_SHAPE_WORDS = {word for words in SHAPE_SYNONYMS.values() for word in words}


def shapes_import_write(folder: Path, *, n: int, seed: int, answers: str = "both") -> Path:
    """Write `n` scenes (PNGs) and their items as a Loupe JSONL file in `folder`; returns the file's path.

    `answers` picks each item's responses: "both" (the true caption and the one with a planted error, as
    `shapes_world_items` makes them) or "hallucinated" (only the caption with the planted error: the model's
    answer an annotator corrects). The ground truth stays in `meta` either way."""
    folder.mkdir(parents=True, exist_ok=True)
    items = shapes_world_items(n=n, seed=seed, image_dir=folder)
    if answers == "hallucinated":
        items = [{**item, "responses": [item["responses"][1]]} for item in items]
    path = folder / "items.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


def truth_of(meta: dict[str, Any]) -> str:
    """The true caption of an item's scene, from the ground truth its `meta` holds."""
    return scene_caption(scene_from_dict(meta))


def _segment_type(original: str, types: Sequence[str]) -> str:
    words = {w.strip(".,:;").lower() for w in original.split()}
    if words & set(COUNT_WORDS) and "count" in types:
        return "count"
    if words & _SHAPE_WORDS and "object" in types:
        return "object"
    if words & set(COLOURS) and "attribute" in types:
        return "attribute"
    return "other" if "other" in types else types[-1]


def segments_against_truth(answer: str, truth: str, *, types: Sequence[str]) -> list[dict[str, Any]]:
    """The segments an annotator who sees the scene marks in `answer`: each run of words that differs from the
    true caption, with the true words as its replacement (an object that is not there is deleted). Words the
    truth has and the answer lacks cannot be marked (a segment is a span of the answer) and are left out."""
    words = list(_WORD.finditer(answer))
    truth_words = truth.split()
    matcher = difflib.SequenceMatcher(a=[w.group() for w in words], b=truth_words, autojunk=False)
    segments = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op not in ("replace", "delete"):
            continue
        start, end = words[i1].start(), words[i2 - 1].end()
        original = answer[start:end]
        replacement = " ".join(truth_words[j1:j2])
        if replacement == original:
            continue
        segments.append(
            {
                "start": start,
                "end": end,
                "original": original,
                "replacement": replacement,
                "type": _segment_type(original, types),
            }
        )
    return segments


def errors_against_truth(answer: str, truth: str) -> int:
    """How many wrong stretches an annotator who sees the scene finds in `answer` (what a judge comparing two
    answers counts): the segments `segments_against_truth` marks, plus one when the answer leaves out an object
    the scene has (a gap a segment cannot mark)."""
    from annotation.shapes_world import mentioned_objects

    wrong = len(segments_against_truth(answer, truth, types=("object", "attribute", "count", "other")))
    missing = len(set(mentioned_objects(truth)) - set(mentioned_objects(answer)))
    return wrong + missing


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(text: str) -> str:
    """A sampled answer without control characters: a byte-level tokenizer can sample a NUL, which Loupe's
    import refuses (no database stores it), as it would refuse the researcher's file."""
    return _CONTROL.sub("", text)


def model_answers_import_write(
    folder: Path, *, model_dir: str, n: int, seed: int, samples: int = 1, temperature: float = 0.0
) -> Path:
    """A Loupe JSONL import of the model's own answers: `n` new scenes (PNGs written beside the file, each
    asked `Describe the image.`) with `samples` answers of the model at `model_dir` (greedy when `temperature`
    is 0), and the scene's ground truth in `meta`, as a researcher imports a model's outputs to have them
    corrected or compared. A scene where an answer came out empty is left out (the import refuses empty
    answers, rightly). Torch: worker side."""
    import random as random_module

    import torch

    from annotation.shapes_world import scene_generate, scene_render
    from training.generation import answer_prefix_of, load_policy, sample_answers

    folder.mkdir(parents=True, exist_ok=True)
    model, processing_class = load_policy(model_dir)
    prefix = answer_prefix_of(model_dir)
    prompt = "Describe the image."
    scenes = [scene_generate(seed=seed * 1_000_003 + 700_000 + i) for i in range(n)]
    decoding = {"do_sample": temperature > 0, "temperature": temperature if temperature > 0 else 1.0}
    torch.manual_seed(seed)
    random_module.seed(seed)
    items = []
    for start in range(0, n, 32):
        chunk = scenes[start : start + 32]
        images = [scene_render(scene) for scene in chunk]
        answers = sample_answers(
            model, processing_class, prompts=[prompt] * len(chunk), images=[[image] for image in images],
            max_new_tokens=64, answer_prefix=prefix, use_template=True, n=samples, **decoding,
        )  # fmt: skip
        for scene, image, sampled in zip(chunk, images, answers, strict=True):
            texts = [_printable(text).strip() for text in sampled]
            if not all(texts):  # an answer that stopped at once says nothing to correct or compare
                continue
            name = f"scene-{scene.seed}.png"
            image.save(folder / name)
            items.append(
                {
                    "external_id": f"scene-{scene.seed}",
                    "image": name,
                    "prompt": prompt,
                    "responses": [{"text": text, "model": Path(model_dir).name} for text in texts],
                    "meta": {
                        "scene_seed": scene.seed,
                        "width": scene.width,
                        "height": scene.height,
                        "objects": [asdict(o) for o in scene.objects],
                    },
                }
            )
    path = folder / "items.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path
