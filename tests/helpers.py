"""Helpers the tests import (fixtures live in conftest.py)."""

import io
import json
import time
import zipfile
from pathlib import Path

import pytest


def write_shapes_import(root: Path, *, n: int, seed: int) -> Path:
    """A Loupe JSONL import of shapes-world items, images beside it; returns the JSONL path."""
    from annotation.shapes_world import shapes_world_items

    root.mkdir(parents=True, exist_ok=True)
    items = shapes_world_items(n=n, seed=seed, image_dir=root)
    path = root / "items.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


def zip_images(jsonl: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for image in sorted(jsonl.parent.glob("*.png")):
            bundle.write(image, image.name)
    return buffer.getvalue()


def wait_for(predicate, *, timeout: float, interval: float = 0.5, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail the test with `message` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {message}")
