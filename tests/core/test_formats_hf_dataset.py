"""Hugging Face `datasets` directory export: loads with `load_from_disk` (memory-mapped by default; with
`images_once`, each image stored once per batch), conversational when it has images so trl's own vision
collator takes it."""

import hashlib
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets
import numpy as np
import pytest
from PIL import Image

from annotation.formats import FORMAT_WRITERS, read_manifest
from annotation.formats.hf_dataset import DATA_FILE
from annotation.pair_rules import PairwiseVote, pairs_from_pairwise
from tests.core.reference_loaders import trl_vision_collate


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    Image.new("RGB", (20, 14), "green").save(root / "scene.png")
    # Noise does not compress: the file sizes below count copies of it.
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "noise.png")
    Image.fromarray(noise[::-1].copy()).save(root / "other.png")
    return root


def votes(item, image):
    return [
        PairwiseVote(item, f"Question about {item}?", image, "right answer", "wrong answer", "r1", "r2", "a"),
        PairwiseVote(item, f"Question about {item}?", image, "right answer", "wrong answer", "r1", "r2", "a"),
    ]


def texts(row):
    """(prompt, chosen, rejected) of a row in standard or conversational form."""

    def text(value):
        if isinstance(value, str):
            return value
        return "".join(part["text"] or "" for part in value[0]["content"] if part["type"] == "text")

    return text(row["prompt"]), text(row["chosen"]), text(row["rejected"])


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
    assert [texts(r) for r in dataset] == [(p.prompt, p.chosen, p.rejected) for p in pairs]
    image = dataset[0]["images"][0]
    assert isinstance(image, Image.Image)
    assert image.size == (20, 14)
    assert manifest["counts"] == {"rows": 2, "images": 1, "by_source": {"pairwise": 2}}
    assert read_manifest(tmp_path / "ds")["snapshot_hash"] == snapshot_hash


def test_pairs_with_images_are_conversational_by_default_and_standard_on_request(image_root, tmp_path):
    """With images the default is trl's conversational form, the image a typed part before the text;
    `conversational=False` still writes plain strings."""
    pairs = list(pairs_from_pairwise(votes("q1", "scene.png")))
    manifest = FORMAT_WRITERS["hf-dataset"](
        rows=pairs, out_dir=tmp_path / "ds", snapshot_hash="h", image_root=image_root
    )
    row = datasets.load_from_disk(str(tmp_path / "ds"))[0]
    assert manifest["conversational"] is True
    assert row["prompt"][0]["role"] == "user"
    assert [part["type"] for part in row["prompt"][0]["content"]] == ["image", "text"]
    assert row["chosen"][0]["content"][0]["text"] == "right answer"
    FORMAT_WRITERS["hf-dataset"](
        rows=pairs, out_dir=tmp_path / "plain", snapshot_hash="h", image_root=image_root, conversational=False
    )
    assert datasets.load_from_disk(str(tmp_path / "plain"))[0]["prompt"] == "Question about q1?"


def test_each_distinct_image_is_stored_once_per_batch_and_every_row_gets_its_own(image_root, tmp_path):
    """40 pairs over two images (and rows without one) store each image once, and every row still
    decodes to its own image; batches that hold other images than the batch before store them again."""
    size = (image_root / "noise.png").stat().st_size
    rows = []
    for k in range(40):
        image = ("noise.png", "other.png", None)[k % 3]
        rows += list(pairs_from_pairwise(votes(f"q{k:02d}", image)))
    write = FORMAT_WRITERS["hf-dataset"]
    write(rows=rows, out_dir=tmp_path / "one", snapshot_hash="h", image_root=image_root, images_once=True)
    write(
        rows=rows, out_dir=tmp_path / "four", snapshot_hash="h", image_root=image_root, images_once=True, batch_rows=10
    )
    one, four = ((tmp_path / name / DATA_FILE).stat().st_size for name in ("one", "four"))
    assert 2 * size < one < 3 * size
    # Batches of 10 start on noise, other, none-then-noise, noise: Arrow writes a batch's images again only
    # when they differ from the batch before, so 3 of the 4 batches carry their two images (4 copies more).
    assert 4 * size < four - one < 5 * size
    for folder in ("one", "four"):
        dataset = datasets.load_from_disk(str(tmp_path / folder))
        assert len(dataset) == 40
        for row, pair in zip(dataset, rows, strict=True):
            if pair.image is None:
                assert row["images"] == [] and [p["type"] for p in row["prompt"][0]["content"]] == ["text"]
            else:
                (image,) = row["images"]
                assert np.array_equal(np.asarray(image), np.asarray(Image.open(image_root / pair.image)))


def test_one_cartoon_under_every_pair_is_stored_once_whatever_the_batches(image_root, tmp_path):
    """A caption contest's pairs all show its cartoon: every batch has the same one image, written once."""
    size = (image_root / "noise.png").stat().st_size
    rows = [p for k in range(30) for p in pairs_from_pairwise(votes(f"caption-{k}", "noise.png"))]
    write = FORMAT_WRITERS["hf-dataset"]
    write(rows=rows, out_dir=tmp_path / "whole", snapshot_hash="h", image_root=image_root, images_once=True)
    write(rows=rows, out_dir=tmp_path / "ds", snapshot_hash="h", image_root=image_root, images_once=True, batch_rows=7)
    whole, batched = ((tmp_path / name / DATA_FILE).stat().st_size for name in ("whole", "ds"))
    assert size < whole < 2 * size
    assert batched - whole < size / 2  # five batches, still one copy
    assert datasets.load_from_disk(str(tmp_path / "ds"))[29]["images"][0].size == (64, 64)


def test_by_default_every_row_holds_its_image_and_loading_memory_maps_them(image_root, tmp_path):
    """The default layout costs disk (a copy per row) but no memory at load: `load_from_disk` maps the file.
    `images_once` is small on disk and is expanded into memory when loaded: the trade-off the option names."""
    import pyarrow as pa

    size = (image_root / "noise.png").stat().st_size
    rows = [p for k in range(30) for p in pairs_from_pairwise(votes(f"caption-{k}", "noise.png"))]
    write = FORMAT_WRITERS["hf-dataset"]
    write(rows=rows, out_dir=tmp_path / "rows", snapshot_hash="h", image_root=image_root)
    write(rows=rows, out_dir=tmp_path / "once", snapshot_hash="h", image_root=image_root, images_once=True)
    assert (tmp_path / "rows" / DATA_FILE).stat().st_size > 30 * size
    assert (tmp_path / "once" / DATA_FILE).stat().st_size < 2 * size
    assert read_manifest(tmp_path / "once")["images_once"] is True

    def loaded_bytes(folder):
        before = pa.total_allocated_bytes()
        dataset = datasets.load_from_disk(str(tmp_path / folder))
        grown = pa.total_allocated_bytes() - before
        assert np.asarray(dataset[29]["images"][0]).shape == (64, 64, 3)
        return grown

    assert loaded_bytes("rows") < size
    assert loaded_bytes("once") > 20 * size


def test_batches_are_cut_by_the_image_bytes_the_rows_expand_to(image_root, tmp_path, monkeypatch):
    """`datasets` expands the dictionary when it loads a batch, and one Arrow binary array holds at most
    2 GiB: so a batch ends at the byte limit counted over its rows, even when they share one image."""
    import pyarrow as pa

    import annotation.formats.hf_dataset as hf_dataset

    size = (image_root / "noise.png").stat().st_size
    monkeypatch.setattr(hf_dataset, "PARQUET_BATCH_BYTES", 3 * size)
    rows = [p for k in range(9) for p in pairs_from_pairwise(votes(f"caption-{k}", "noise.png"))]
    FORMAT_WRITERS["hf-dataset"](
        rows=rows, out_dir=tmp_path / "ds", snapshot_hash="h", image_root=image_root, images_once=True
    )
    with pa.memory_map(str(tmp_path / "ds" / DATA_FILE)) as source:
        assert [batch.num_rows for batch in pa.ipc.open_stream(source)] == [3, 3, 3]
    assert len(datasets.load_from_disk(str(tmp_path / "ds"))) == 9


def test_trl_vision_collator_takes_the_default_export(image_root, tiny_vlm_dir, tmp_path):
    """trl's own `DataCollatorForVisionPreference` batches the default export's rows (pixel values, and
    image tokens in the ids); the standard form is what it refuses, hence the default."""
    pairs = list(pairs_from_pairwise(votes("q1", "scene.png") + votes("q2", "scene.png")))
    write = FORMAT_WRITERS["hf-dataset"]
    write(rows=pairs, out_dir=tmp_path / "ds", snapshot_hash="h", image_root=image_root)
    rows = list(datasets.load_from_disk(str(tmp_path / "ds")))
    batch = trl_vision_collate(rows, processor_dir=tiny_vlm_dir)
    assert batch["pixel_values"].shape[0] >= 2
    assert batch["input_ids"].shape[0] == 4  # chosen and rejected of each row
    write(rows=pairs, out_dir=tmp_path / "plain", snapshot_hash="h", image_root=image_root, conversational=False)
    with pytest.raises(ValueError, match="image"):
        trl_vision_collate(list(datasets.load_from_disk(str(tmp_path / "plain"))), processor_dir=tiny_vlm_dir)


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
    loaded = datasets.load_from_disk(str(tmp_path / "ds"))
    assert loaded.column_names == ["prompt", "chosen", "rejected"]
    assert loaded[0]["prompt"] == "Question about q1?"
    FORMAT_WRITERS["hf-dataset"](rows=pairs, out_dir=tmp_path / "with", snapshot_hash="h", with_images=True)
    assert datasets.load_from_disk(str(tmp_path / "with"))[0]["images"] == []
