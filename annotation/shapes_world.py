"""The shapes world: synthetic scenes of coloured shapes with known ground truth.

No model hub is reachable in tests, so Loupe draws its own images: one to four coloured shapes on a plain
background, each in its own cell of a 3x3 grid, so every object has a clear position word ("on the left",
"in the top right"). From the ground-truth object list come a true caption, a question, a caption with a
planted hallucination (and the character spans that are wrong), POPE-style yes/no questions and a CHAIR-style
vocabulary. Everything is a pure function of a seed; only Pillow is needed (no torch, no Django).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")

# Fill colours far apart in RGB so a pixel's colour name is never in doubt. Pillow draws polygons and
# ellipses without anti-aliasing, so a rendered image holds exactly these values plus the background.
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 20, 20),
    "green": (20, 160, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 0),
    "purple": (130, 30, 170),
    "orange": (250, 130, 0),
}
BACKGROUND_RGB: tuple[int, int, int] = (245, 245, 245)

# Words a model may use for each shape; a CHAIR-style metric maps a mention back to its shape with these.
SHAPE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "circles", "disc", "discs", "dot", "dots", "ball", "balls"),
    "square": ("square", "squares", "box", "boxes", "rectangle", "rectangles"),
    "triangle": ("triangle", "triangles"),
    "star": ("star", "stars"),
}

GRID = 3  # the image is split into GRID x GRID cells, at most one object per cell
MAX_OBJECTS = 4

# Position phrase of each grid cell, indexed [row][column].
PLACES: tuple[tuple[str, ...], ...] = (
    ("in the top left", "at the top", "in the top right"),
    ("on the left", "in the centre", "on the right"),
    ("in the bottom left", "at the bottom", "in the bottom right"),
)

COUNT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five")

QUESTIONS: tuple[str, ...] = (
    "Describe the image.",
    "What shapes are in the image?",
    "What do you see in this picture?",
    "Describe the objects in the image and where they are.",
)


@dataclass(frozen=True)
class SceneObject:
    """One shape: its name, colour, centre (x, y) in pixels and size (width of its bounding box)."""

    shape: str
    colour: str
    x: int
    y: int
    size: int


@dataclass(frozen=True)
class Scene:
    """A drawn scene: the seed it came from, its objects in reading order, and the image size."""

    seed: int
    objects: list[SceneObject] = field(default_factory=list)
    width: int = 96
    height: int = 96


def scene_generate(*, seed: int, width: int = 96, height: int = 96) -> Scene:
    """Build the scene for ``seed``: 1-4 objects, each in a distinct grid cell, in reading order."""
    rng = random.Random(seed)
    n_objects = rng.randint(1, MAX_OBJECTS)
    cells = sorted(rng.sample(range(GRID * GRID), n_objects))  # sorted = reading order
    cell_w, cell_h = width // GRID, height // GRID
    smallest_cell = min(cell_w, cell_h)
    objects = []
    for cell in cells:
        row, col = divmod(cell, GRID)
        size = rng.randint(int(smallest_cell * 0.5), int(smallest_cell * 0.85))
        # Jitter the centre but keep the whole shape inside its cell, so the position word stays true.
        slack_x, slack_y = (cell_w - size) // 2, (cell_h - size) // 2
        x = col * cell_w + cell_w // 2 + rng.randint(-slack_x, slack_x)
        y = row * cell_h + cell_h // 2 + rng.randint(-slack_y, slack_y)
        objects.append(SceneObject(shape=rng.choice(SHAPES), colour=rng.choice(COLOURS), x=x, y=y, size=size))
    return Scene(seed=seed, objects=objects, width=width, height=height)


def scene_from_dict(data: dict) -> Scene:
    """Rebuild a scene from ``dataclasses.asdict(scene)`` (or an item's ``meta`` with ``objects``)."""
    return Scene(
        seed=int(data.get("seed", 0)),
        objects=[SceneObject(**obj) for obj in data["objects"]],
        width=int(data.get("width", 96)),
        height=int(data.get("height", 96)),
    )


def _star_points(cx: float, cy: float, outer: float) -> list[tuple[float, float]]:
    inner = outer * 0.38  # thin points, so a star never fills its box like a triangle
    points = []
    for k in range(10):
        radius = outer if k % 2 == 0 else inner
        angle = -math.pi / 2 + k * math.pi / 5  # first point straight up
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def scene_render(scene: Scene) -> Image.Image:
    """Draw the scene as an RGB image (no anti-aliasing: every pixel is a palette colour or background)."""
    image = Image.new("RGB", (scene.width, scene.height), BACKGROUND_RGB)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        fill = COLOUR_RGB[obj.colour]
        half = obj.size / 2
        left, top, right, bottom = obj.x - half, obj.y - half, obj.x + half - 1, obj.y + half - 1
        if obj.shape == "circle":
            draw.ellipse((left, top, right, bottom), fill=fill)
        elif obj.shape == "square":
            draw.rectangle((left, top, right, bottom), fill=fill)
        elif obj.shape == "triangle":
            draw.polygon([(obj.x, top), (right, bottom), (left, bottom)], fill=fill)
        elif obj.shape == "star":
            draw.polygon(_star_points(obj.x, obj.y, half), fill=fill)
        else:
            raise ValueError(f"unknown shape {obj.shape!r}")
    return image


def object_place(scene: Scene, obj: SceneObject) -> str:
    """The position phrase of an object ("on the left"), from the grid cell holding its centre."""
    col = min(obj.x * GRID // scene.width, GRID - 1)
    row = min(obj.y * GRID // scene.height, GRID - 1)
    return PLACES[row][col]


def _count_phrase(n: int) -> tuple[str, str, str]:
    """('is'/'are', count word, 'object'/'objects') for n objects."""
    return ("is" if n == 1 else "are", COUNT_WORDS[n], "object" if n == 1 else "objects")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _compose_caption(
    described: list[tuple[str, str, str]], *, count: int, wrong: set[tuple[int, str]]
) -> tuple[str, list[tuple[int, int]]]:
    """Write a caption for (colour, shape, place) triples and return the spans of the parts marked wrong.

    ``wrong`` holds (index, part) pairs where part is "colour" (with its article), "shape" or "object" (the
    whole phrase); index -1 with part "count" marks the count word.
    """
    verb, count_word, noun = _count_phrase(count)
    text = f"There {verb} "
    spans: list[tuple[int, int]] = []
    if (-1, "count") in wrong:
        spans.append((len(text), len(text) + len(count_word)))
    text += f"{count_word} {noun}: "
    for i, (colour, shape, place) in enumerate(described):
        if i > 0:
            text += " and " if i == len(described) - 1 else ", "
        start = len(text)
        text += f"{_article(colour)} {colour}"
        if (i, "colour") in wrong:
            spans.append((start, len(text)))  # with its article: "an orange" -> "a red" changes both
        text += " "
        shape_start = len(text)
        text += shape
        if (i, "shape") in wrong:
            spans.append((shape_start, len(text)))
        text += f" {place}"
        if (i, "object") in wrong:
            spans.append((start, len(text)))
    return text + ".", spans


def scene_caption(scene: Scene) -> str:
    """The true caption: count, then each object's colour, shape and position in reading order."""
    described = [(o.colour, o.shape, object_place(scene, o)) for o in scene.objects]
    text, _ = _compose_caption(described, count=len(described), wrong=set())
    return text


def scene_question(scene: Scene) -> str:
    """A question the caption answers, picked from the seed so the same scene always gets the same one."""
    return QUESTIONS[scene.seed % len(QUESTIONS)]


def scene_hallucinated_caption(scene: Scene, *, rng: random.Random) -> tuple[str, list[tuple[int, int]]]:
    """A caption with one planted error, and the (start, end) character spans that are wrong.

    The error is one of: an object's colour swapped, an object's shape swapped, or an extra object that is
    not in the image (which also makes the count wrong). Everything outside the spans is true.
    """
    described = [(o.colour, o.shape, object_place(scene, o)) for o in scene.objects]
    kinds = ["colour", "shape"] + (["extra"] if len(described) < MAX_OBJECTS else [])
    kind = rng.choice(kinds)
    if kind == "extra":
        used_places = {place for _, _, place in described}
        free = [(r, c) for r in range(GRID) for c in range(GRID) if PLACES[r][c] not in used_places]
        row, col = rng.choice(free)
        present = {(colour, shape) for colour, shape, _ in described}
        absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
        colour, shape = rng.choice(absent)
        # Keep reading order so the extra object reads like any other.
        cells = [
            next((r, c) for r in range(GRID) for c in range(GRID) if PLACES[r][c] == place) for _, _, place in described
        ]
        index = sum(1 for cell in cells if cell < (row, col))
        described.insert(index, (colour, shape, PLACES[row][col]))
        wrong = {(-1, "count"), (index, "object")}
    else:
        index = rng.randrange(len(described))
        colour, shape, place = described[index]
        if kind == "colour":
            colour = rng.choice([c for c in COLOURS if c != colour])
        else:
            shape = rng.choice([s for s in SHAPES if s != shape])
        described[index] = (colour, shape, place)
        wrong = {(index, kind)}
    return _compose_caption(described, count=len(described), wrong=wrong)


def pope_questions(scene: Scene, *, strategy: str = "random") -> list[dict]:
    """Balanced POPE-style yes/no questions: one "yes" per distinct (colour, shape) present, as many "no".

    ``strategy`` picks the absent objects: "random" from all absent combinations, "adversarial" from those
    sharing a colour or a shape with an object in the image (harder to reject). Each question is a dict
    ``{"question", "label" ("yes"/"no"), "colour", "shape"}``; order is deterministic from the scene seed.
    """
    if strategy not in ("random", "adversarial"):
        raise ValueError(f"strategy must be 'random' or 'adversarial', not {strategy!r}")
    present = list(dict.fromkeys((o.colour, o.shape) for o in scene.objects))
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
    if strategy == "adversarial":
        near = [(c, s) for c, s in absent if any(c == pc or s == ps for pc, ps in present)]
        absent = near if len(near) >= len(present) else absent
    rng = random.Random(scene.seed)
    negatives = rng.sample(absent, len(present))
    rows = [(c, s, "yes") for c, s in present] + [(c, s, "no") for c, s in negatives]
    rng.shuffle(rows)
    return [
        {"question": f"Is there {_article(c)} {c} {s} in the image?", "label": label, "colour": c, "shape": s}
        for c, s, label in rows
    ]


_MENTION = re.compile(r"\b(" + "|".join(COLOURS) + r")\s+([a-z]+)\b")


def mentioned_objects(text: str) -> list[tuple[str, str]]:
    """(colour, shape) pairs a text mentions as "<colour> <shape word>", shape words mapped by synonyms."""
    word_to_shape = {word: shape for shape, words in SHAPE_SYNONYMS.items() for word in words}
    found = []
    for colour, word in _MENTION.findall(text.lower()):
        if word in word_to_shape:
            found.append((colour, word_to_shape[word]))
    return found


def shapes_world_items(*, n: int, seed: int, image_dir: Path) -> list[dict]:
    """Write ``n`` scene PNGs into ``image_dir`` and return them as Loupe JSONL item dicts.

    Each item has the true caption (model "shapes-truth") and a hallucinated one (model
    "shapes-hallucinator") as responses; ``meta`` holds the ground-truth objects, the scene seed and the
    wrong character spans of the hallucinated caption, so simulated annotators can correct it.
    """
    image_dir = Path(image_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    items = []
    for i in range(n):
        scene = scene_generate(seed=seed * 1_000_003 + i)
        file_name = f"shape-{seed}-{i}.png"
        scene_render(scene).save(image_dir / file_name)
        wrong_text, wrong_spans = scene_hallucinated_caption(scene, rng=rng)
        items.append(
            {
                "external_id": f"shape-{seed}-{i}",
                "image": file_name,
                "prompt": scene_question(scene),
                "responses": [
                    {"text": scene_caption(scene), "model": "shapes-truth"},
                    {"text": wrong_text, "model": "shapes-hallucinator"},
                ],
                "meta": {
                    "scene_seed": scene.seed,
                    "width": scene.width,
                    "height": scene.height,
                    "objects": [asdict(o) for o in scene.objects],
                    "hallucinated_spans": [list(span) for span in wrong_spans],
                },
            }
        )
    return items
