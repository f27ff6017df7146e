"""The shapes world draws what its captions say, deterministically, and plants findable errors."""

import json
import random
import re

import numpy as np
import pytest
from PIL import Image

from annotation.shapes_world import (
    BACKGROUND_RGB,
    COLOUR_RGB,
    COLOURS,
    GRID,
    PLACES,
    SHAPES,
    mentioned_objects,
    pope_questions,
    scene_caption,
    scene_generate,
    scene_hallucinated_caption,
    scene_question,
    scene_render,
    shapes_world_items,
)

SEEDS = range(40)
PLACE_TO_CELL = {PLACES[r][c]: (r, c) for r in range(GRID) for c in range(GRID)}
CAPTION_OBJECT = re.compile(
    r"an? (" + "|".join(COLOURS) + r") (" + "|".join(SHAPES) + r") (" + "|".join(PLACE_TO_CELL) + r")"
)
COUNT_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def classify_shape(mask: np.ndarray) -> str:
    """Name a filled shape from how much of its bounding box it covers (square 1, circle ~.79,
    triangle ~.5, five-pointed star ~.33)."""
    rows, cols = np.nonzero(mask)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    fill = mask.sum() / box
    if fill > 0.92:
        return "square"
    if fill > 0.65:
        return "circle"
    if fill > 0.47:
        return "triangle"
    return "star"


def read_image(image: Image.Image) -> list[tuple[str, str, tuple[int, int]]]:
    """(colour, shape, cell) of every object found in the pixels, independent of the generator."""
    pixels = np.asarray(image)
    height, width, _ = pixels.shape
    found = []
    for r in range(GRID):
        for c in range(GRID):
            cell = pixels[r * height // GRID : (r + 1) * height // GRID, c * width // GRID : (c + 1) * width // GRID]
            for colour, rgb in COLOUR_RGB.items():
                mask = np.all(cell == rgb, axis=-1)
                if mask.sum() > 20:
                    found.append((colour, classify_shape(mask), (r, c)))
    return found


def parse_caption(text: str) -> tuple[int, list[tuple[str, str, tuple[int, int]]]]:
    count = COUNT_WORDS[re.match(r"There (?:is|are) (\w+) object", text).group(1)]
    return count, [(col, shp, PLACE_TO_CELL[place]) for col, shp, place in CAPTION_OBJECT.findall(text)]


@pytest.mark.parametrize("seed", SEEDS)
def test_caption_describes_the_drawn_pixels(seed):
    """Colour, shape and position of every object read from the image match the true caption, and the
    image holds no other colours than the palette and the background."""
    scene = scene_generate(seed=seed)
    image = scene_render(scene)
    count, described = parse_caption(scene_caption(scene))
    assert count == len(described) == len(scene.objects)
    assert sorted(read_image(image)) == sorted(described)
    colours = {tuple(p) for p in np.asarray(image).reshape(-1, 3)}
    assert colours <= {BACKGROUND_RGB, *COLOUR_RGB.values()}


def test_same_seed_same_scene_and_pixels():
    """A seed always gives the same objects, caption and image; different seeds give different scenes."""
    a, b = scene_generate(seed=7), scene_generate(seed=7)
    assert a == b
    assert scene_render(a).tobytes() == scene_render(b).tobytes()
    assert scene_caption(a) == scene_caption(b) and scene_question(a) == scene_question(b)
    assert len({scene_caption(scene_generate(seed=s)) for s in SEEDS}) > 30


def test_scenes_cover_the_vocabulary():
    """Across a few dozen seeds every shape, colour and object count from 1 to 4 appears."""
    scenes = [scene_generate(seed=s) for s in SEEDS]
    assert {o.shape for s in scenes for o in s.objects} == set(SHAPES)
    assert {o.colour for s in scenes for o in s.objects} == set(COLOURS)
    assert {len(s.objects) for s in scenes} == {1, 2, 3, 4}


@pytest.mark.parametrize("seed", SEEDS)
def test_hallucinated_caption_is_wrong_exactly_in_its_spans(seed):
    """The hallucinated caption disagrees with the image, and the marked spans cover every word that
    differs from the true caption."""
    scene = scene_generate(seed=seed)
    truth = scene_caption(scene)
    text, spans = scene_hallucinated_caption(scene, rng=random.Random(seed))
    assert text != truth and spans
    count, described = parse_caption(text)
    assert count == len(described)  # the error reads like a real caption: its count agrees with its list
    assert sorted(described) != sorted(read_image(scene_render(scene)))
    # Blank the wrong spans; what is left must be words of the true caption, in order.
    kept = list(text)
    for start, end in spans:
        assert 0 <= start < end <= len(text)
        kept[start:end] = [" "] * (end - start)
    remaining = "".join(kept).replace(".", " ").replace(",", " ").replace(":", " ").split()
    truth_words = truth.replace(".", " ").replace(",", " ").replace(":", " ").split()
    it = iter(truth_words)
    assert all(word in it for word in remaining if word not in ("is", "are", "object", "objects", "and"))


@pytest.mark.parametrize("strategy", ["random", "adversarial"])
def test_pope_questions_balanced_and_labelled_from_the_image(strategy):
    """Half the POPE questions are "yes" and name objects that are drawn; the "no" ones name objects
    that are not."""
    for seed in SEEDS:
        scene = scene_generate(seed=seed)
        drawn = {(colour, shape) for colour, shape, _ in read_image(scene_render(scene))}
        questions = pope_questions(scene, strategy=strategy)
        labels = [q["label"] for q in questions]
        assert labels.count("yes") == labels.count("no") >= 1
        for q in questions:
            assert ((q["colour"], q["shape"]) in drawn) == (q["label"] == "yes")
            assert mentioned_objects(q["question"]) == [(q["colour"], q["shape"])]


def test_mentioned_objects_reads_synonyms():
    """Mentions are found with shape synonyms; colours without a known shape word are ignored."""
    text = "A Red disc, two blue boxes and a green thing near an orange star."
    assert mentioned_objects(text) == [("red", "circle"), ("blue", "square"), ("orange", "star")]


def test_items_write_images_and_loupe_jsonl(tmp_path):
    """Items name PNGs that exist and show the scene, carry the true and hallucinated captions, and
    serialise as JSON lines."""
    items = shapes_world_items(n=6, seed=3, image_dir=tmp_path)
    assert [it["external_id"] for it in items] == [f"shape-3-{i}" for i in range(6)]
    for item in items:
        image = Image.open(tmp_path / item["image"])
        truth, wrong = item["responses"]
        assert truth["model"] == "shapes-truth" and wrong["model"] == "shapes-hallucinator"
        assert sorted(read_image(image)) == sorted(parse_caption(truth["text"])[1])
        assert len(item["meta"]["objects"]) == parse_caption(truth["text"])[0]
        assert item["prompt"].endswith(("?", "."))
        for start, end in item["meta"]["hallucinated_spans"]:
            assert wrong["text"][start:end].strip()
        json.loads(json.dumps(item))
    again = shapes_world_items(n=6, seed=3, image_dir=tmp_path / "again")
    assert again == items
