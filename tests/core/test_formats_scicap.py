"""SciCap export: metadata.jsonl with `[GOOD]`/`[BAD]` captions and the figure images beside it."""

import json

import pytest
from PIL import Image

from annotation.formats import FORMAT_WRITERS
from annotation.pair_rules import RatingAggregate, SFTRow, sft_rows_from_ratings

SCALE = ("1", "2", "3", "4", "5")


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / "figures"
    root.mkdir()
    Image.new("RGB", (30, 20), "white").save(root / "fig1.png")
    Image.new("RGB", (25, 25), "gray").save(root / "fig2.jpg")
    return root


def test_metadata_names_copied_images_and_carries_control_tokens(image_root, tmp_path):
    """Every line names a file that exists next to metadata.jsonl; captions start with their token."""
    aggregates = [
        RatingAggregate("f1", "Caption the figure.", "fig1.png", "Accuracy rises with size.", {"5": 3, "4": 1}, SCALE),
        RatingAggregate("f1", "Caption the figure.", "fig1.png", "A plot.", {"1": 2, "2": 2}, SCALE),
        RatingAggregate("f2", "Caption the figure.", "fig2.jpg", "Loss curves per epoch.", {"4": 2}, SCALE),
    ]
    rows = list(sft_rows_from_ratings(aggregates, threshold=3.5))
    manifest = FORMAT_WRITERS["scicap"](rows=rows, out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root)
    lines = [json.loads(x) for x in (tmp_path / "out" / "metadata.jsonl").read_text("utf-8").splitlines()]
    assert [x["RLHF_caption"] for x in lines] == [
        "[GOOD] Accuracy rises with size.",
        "[BAD] A plot.",
        "[GOOD] Loss curves per epoch.",
    ]
    for line, aggregate in zip(lines, aggregates, strict=True):
        assert set(line) == {"file_name", "RLHF_caption"}
        exported = tmp_path / "out" / line["file_name"]
        assert exported.is_file()
        assert exported.read_bytes() == (image_root / aggregate.image).read_bytes()
    assert lines[0]["file_name"] == lines[1]["file_name"]
    assert manifest["counts"] == {"rows": 3, "images": 2, "by_label": {"bad": 1, "good": 2}}


def test_rows_without_an_image_are_refused(tmp_path):
    """SciCap is figure captioning: a row without an image cannot be exported."""
    with pytest.raises(ValueError, match="image"):
        FORMAT_WRITERS["scicap"](rows=[SFTRow("k", "p", None, "[GOOD] x")], out_dir=tmp_path / "o", snapshot_hash="s")
