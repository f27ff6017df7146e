"""Session fixtures for the ML core tests: tiny models and shapes-world preference files, built once.

Heavy imports (transformers, torch) happen inside the fixtures, so tests that need none of them stay fast.
"""

import json
import os
from pathlib import Path

import pytest

# Nothing in these tests may reach a model hub; fail loudly instead of hanging on a download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_models_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_lm_dir(tiny_models_root) -> Path:
    from training.tiny_models import make_tiny_model

    return make_tiny_model(kind="lm", out_dir=tiny_models_root / "lm")


@pytest.fixture(scope="session")
def tiny_vlm_dir(tiny_models_root) -> Path:
    from training.tiny_models import make_tiny_model

    return make_tiny_model(kind="vlm", out_dir=tiny_models_root / "vlm")


@pytest.fixture(scope="session")
def tiny_reward_dir(tiny_models_root) -> Path:
    from training.tiny_models import make_tiny_model

    return make_tiny_model(kind="reward", out_dir=tiny_models_root / "reward")


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
def image_preference_file(shapes_items) -> Path:
    root, items = shapes_items
    return write_preference_jsonl(items=items, path=root / "images.jsonl", with_images=True, with_spans=False)
