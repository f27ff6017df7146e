"""Hugging Face `datasets` directory export: loads with `load_from_disk`, images embedded."""

import hashlib
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets
import pytest
from PIL import Image

from annotation.formats import FORMAT_WRITERS, read_manifest
from annotation.pair_rules import PairwiseVote, pairs_from_pairwise


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    Image.new("RGB", (20, 14), "green").save(root / "scene.png")
    return root


def votes(item, image):
    return [
        PairwiseVote(item, f"Question about {item}?", image, "right answer", "wrong answer", "r1", "r2", "a"),
        PairwiseVote(item, f"Question about {item}?", image, "right answer", "wrong answer", "r1", "r2", "a"),
    ]


def test_dataset_directory_loads_with_pil_images_that_survive_the_source_being_removed(image_root, tmp_path):
    """`load_from_disk` gives the pairs with PIL images, read from the export itself (bytes embedded)."""
    pairs = list(pairs_from_pairwise(votes("q1", "scene.png") + votes("q2", "scene.png")))
    snapshot_hash = hashlib.sha256(b"snapshot").hexdigest()
    manifest = FORMAT_WRITERS["hf-dataset"](
        rows=pairs, out_dir=tmp_path / "ds", snapshot_hash=snapshot_hash, image_root=image_root
    )
    shutil.rmtree(image_root)
    dataset = datasets.load_from_disk(str(tmp_path / "ds"))
    assert dataset.column_names == ["prompt", "chosen", "rejected", "images"]
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in dataset] == [
        (p.prompt, p.chosen, p.rejected) for p in pairs
    ]
    image = dataset[0]["images"][0]
    assert isinstance(image, Image.Image)
    assert image.size == (20, 14)
    assert manifest["counts"] == {"rows": 2, "images": 1, "by_source": {"pairwise": 2}}
    assert read_manifest(tmp_path / "ds")["snapshot_hash"] == snapshot_hash


def test_conversational_dataset_has_message_lists(image_root, tmp_path):
    """In conversational form the columns hold chat messages, the image as a typed part."""
    pairs = list(pairs_from_pairwise(votes("q1", "scene.png")))
    FORMAT_WRITERS["hf-dataset"](
        rows=pairs, out_dir=tmp_path / "ds", snapshot_hash="h", image_root=image_root, conversational=True
    )
    row = datasets.load_from_disk(str(tmp_path / "ds"))[0]
    assert row["prompt"][0]["role"] == "user"
    assert [part["type"] for part in row["prompt"][0]["content"]] == ["image", "text"]
    assert row["chosen"][0]["content"][0]["text"] == "right answer"


def test_an_empty_snapshot_gives_an_empty_loadable_dataset(tmp_path):
    """Exporting no rows still writes a dataset directory that loads, with zero rows."""
    manifest = FORMAT_WRITERS["hf-dataset"](rows=[], out_dir=tmp_path / "ds", snapshot_hash="h")
    assert len(datasets.load_from_disk(str(tmp_path / "ds"))) == 0
    assert manifest["counts"]["rows"] == 0


def test_text_only_pairs_have_no_images_column_unless_asked(tmp_path):
    """Text-only pairs export without an `images` column (TRL takes any such column for a vision dataset),
    and with `with_images=True` with empty image lists."""
    pairs = list(pairs_from_pairwise(votes("q1", None)))
    FORMAT_WRITERS["hf-dataset"](rows=pairs, out_dir=tmp_path / "ds", snapshot_hash="h")
    assert datasets.load_from_disk(str(tmp_path / "ds")).column_names == ["prompt", "chosen", "rejected"]
    FORMAT_WRITERS["hf-dataset"](rows=pairs, out_dir=tmp_path / "with", snapshot_hash="h", with_images=True)
    assert datasets.load_from_disk(str(tmp_path / "with"))[0]["images"] == []
