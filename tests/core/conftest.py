"""Session fixtures for the ML core tests: shapes-world preference files, built once, and run hooks.

The tiny models (``tiny_lm_dir``, ``tiny_vlm_dir``, ``tiny_reward_dir``) come from ``tests/conftest.py``,
built once per session for the whole suite. Heavy imports happen inside fixtures, so tests that need none
of them stay fast.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Nothing in these tests may reach a model hub; fail loudly instead of hanging on a download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Quiet Hugging Face progress bars by their own switches: TQDM_DISABLE would also hide the bars Loupe's commands
# draw, which tests check as a user sees them.
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def write_preference_jsonl(*, items: list[dict], path: Path, with_images: bool, with_spans: bool) -> Path:
    """Turn shapes-world items into trl preference rows: chosen = true caption, rejected = hallucinated one.

    Image paths are written relative to the JSONL file; spans (when asked) mark the wrong part of the
    rejected caption, and leave the chosen side to the token diff.
    """
    with path.open("w") as f:
        for item in items:
            truth, wrong = item["responses"]
            row = {"prompt": item["prompt"], "chosen": truth["text"], "rejected": wrong["text"]}
            if with_images:
                row["images"] = [f"images/{item['image']}"]
            if with_spans:
                row["rejected_spans"] = item["meta"]["hallucinated_spans"]
            f.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="session")
def shapes_items(tmp_path_factory) -> tuple[Path, list[dict]]:
    from annotation.shapes_world import shapes_world_items

    root = tmp_path_factory.mktemp("shapes")
    return root, shapes_world_items(n=12, seed=5, image_dir=root / "images")


@pytest.fixture(scope="session")
def text_preference_file(shapes_items) -> Path:
    root, items = shapes_items
    return write_preference_jsonl(items=items, path=root / "text.jsonl", with_images=False, with_spans=False)


@pytest.fixture(scope="session")
def spans_preference_file(shapes_items) -> Path:
    """Text rows whose rejected side carries the character spans of its planted error."""
    root, items = shapes_items
    return write_preference_jsonl(items=items, path=root / "spans.jsonl", with_images=False, with_spans=True)


@pytest.fixture(scope="session")
def image_preference_file(shapes_items) -> Path:
    root, items = shapes_items
    return write_preference_jsonl(items=items, path=root / "images.jsonl", with_images=True, with_spans=False)


class RecordingHooks:
    """RunHooks that record what the run reports and ask it to stop once ``stop_at_step`` is reached."""

    def __init__(self, stop_at_step: int | None = None) -> None:
        self.stop_at_step = stop_at_step
        self.steps: list[tuple[int, int, dict[str, float]]] = []
        self.lines: list[str] = []

    def on_step(self, step: int, max_steps: int, metrics: dict[str, float]) -> None:
        self.steps.append((step, max_steps, metrics))

    def should_stop(self) -> bool:
        return self.stop_at_step is not None and any(step >= self.stop_at_step for step, _, _ in self.steps)

    def on_log_line(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture
def recording_hooks():
    """The RecordingHooks class, to build hooks that watch a run (optionally stopping it)."""
    return RecordingHooks


def write_separable_preferences(*, path: Path, n: int, seed: int, heldout: bool) -> Path:
    """Preference rows whose rule must be learnt, not memorised: the chosen answer answers the question asked.

    A prompt asks for the colour or the shape of the object at a place; the chosen answer names a colour or a
    shape accordingly, the rejected one names the other kind, both at that place. Every answer sentence is
    chosen after one question and rejected after the other, so a scorer that ignores the prompt ranks half the
    pairs right. The colour-place and shape-place combinations are split in two (a third held out), and a file
    uses one part only: no sentence of a ``heldout`` file is in a training file, on either side.
    """
    import random

    from annotation.shapes_world import COLOURS, PLACES, SHAPES

    places = [place for row in PLACES for place in row]

    def answers(values: tuple[str, ...], template: str) -> dict[str, list[str]]:
        """This part's answers naming one of ``values``, by place."""
        return {
            place: [template.format(v, place) for i, v in enumerate(values) if ((i + j) % 3 == 0) == heldout]
            for j, place in enumerate(places)
        }

    colour_answers, shape_answers = answers(COLOURS, "It is {}, {}."), answers(SHAPES, "It is a {}, {}.")
    rng = random.Random(seed)
    with path.open("w") as f:
        for _ in range(n):
            place = rng.choice(places)
            colour, shape = rng.choice(colour_answers[place]), rng.choice(shape_answers[place])
            if rng.random() < 0.5:
                row = {"prompt": f"What colour is the object {place}?", "chosen": colour, "rejected": shape}
            else:
                row = {"prompt": f"What shape is the object {place}?", "chosen": shape, "rejected": colour}
            f.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="session")
def separable_preferences(tmp_path_factory) -> tuple[Path, Path]:
    """(train, held-out) files of the answer-the-question preference, 64 rows each; the held-out answers are
    sentences the training rows never contain."""
    root = tmp_path_factory.mktemp("separable")
    return (
        write_separable_preferences(path=root / "train.jsonl", n=64, seed=1, heldout=False),
        write_separable_preferences(path=root / "heldout.jsonl", n=64, seed=2, heldout=True),
    )


@pytest.fixture
def run_on_two_processes(tmp_path):
    """A function running a Python script under torchrun on two CPU processes (gloo), as a run launched through
    ``LOUPE_TRAIN_LAUNCHER`` runs; the script gets ``args`` as JSON in ``sys.argv[1]``."""
    repo = Path(__file__).resolve().parents[2]

    def run(script: str, args: dict) -> None:
        path = tmp_path / "two_processes.py"
        path.write_text(script)
        env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        done = subprocess.run(  # noqa: S603 (this interpreter, a script the test wrote)
            [*command, str(path), json.dumps(args)], cwd=repo, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-4000:]

    return run
