"""RLHF-V: the release's Parquet out (images embedded, spans beside), the release and the older JSON forms
back in as corrections, the same pairs and spans again; Muffin's reading code takes the export."""

import io
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pyarrow.parquet as pq
import pytest
from PIL import Image

from annotation.formats import FORMAT_READERS, FORMAT_WRITERS, FormatError
from annotation.formats.convert import corrections_from_record
from annotation.formats.rlhf_v import RELEASE_COLUMNS, read_rlhf_v, segments_from_spans, write_rlhf_v_parquet
from annotation.pair_rules import CorrectionInput, PairRow, pairs_from_corrections
from tests.core.reference_loaders import rlhf_v_samples, write_rlhf_v_release


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    Image.new("RGB", (8, 8), "yellow").save(root / "room.png")
    return root


@pytest.fixture
def correction_pairs():
    corrections = [
        CorrectionInput(
            "room-1",
            "Describe the room.",
            "room.png",
            "There is a red sofa, a dog and two lamps in the room.",
            "There is a blue sofa and two lamps in the room.",
            [],
        ),
        CorrectionInput("room-2", "How many lamps?", "room.png", "Three lamps “here”.", "Two lamps “here”.", []),
    ]
    return list(pairs_from_corrections(corrections))


def png(colour, size=(6, 5)):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def release_row(idx, question, chosen, rejected, colour="red"):
    return {
        "ds_name": "RLHF-V",
        "image": {"bytes": png(colour), "path": None},
        "text": json.dumps({"question": question, "chosen": chosen, "rejected": rejected}),
        "origin_dataset": "RLHF-V-Hall_v0",
        "origin_split": json.dumps({"model": "Muffin", "type": "detailed_description"}),
        "idx": idx,
        "image_path": f"{idx}.jpg",
    }


def test_export_is_the_release_parquet_that_muffins_reader_takes(correction_pairs, image_root, tmp_path):
    """The export has the release's columns in order (+ spans), and Muffin's `RLHFVDataset` reading code
    gets each pair's question, answers, image and JSON provenance from it."""
    manifest = FORMAT_WRITERS["rlhf-v"](
        rows=correction_pairs, out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root
    )
    table = pq.read_table(tmp_path / "out" / "rlhf_v.parquet")
    assert tuple(table.column_names) == (*RELEASE_COLUMNS, "chosen_spans", "rejected_spans")
    assert str(table.schema.field("idx").type) == "int64"
    assert manifest["counts"]["rows"] == 2 and manifest["files"][0]["path"] == "rlhf_v.parquet"
    samples = rlhf_v_samples(tmp_path / "out" / "rlhf_v.parquet")
    for sample, pair in zip(samples, correction_pairs, strict=True):
        assert sample["question"]["value"] == f"<image>\n{pair.prompt}"
        assert (sample["chosen"]["value"], sample["rejected"]["value"]) == (pair.chosen, pair.rejected)
        assert sample["image"].size == (8, 8)
        assert sample["metainfo"]["origin_split"]["source"] == "correction"
    assert [row["chosen_spans"] for row in table.to_pylist()][0] == [list(s) for s in correction_pairs[0].chosen_spans]


def test_export_then_import_gives_the_same_pairs_and_spans(correction_pairs, image_root, tmp_path):
    """Export → import (as corrections) → pairs gives the same chosen, rejected, changed spans and image."""
    write_rlhf_v_parquet(rows=correction_pairs, out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root)
    records = list(FORMAT_READERS["rlhf-v"](tmp_path / "out" / "rlhf_v.parquet"))
    assert [r.line for r in records] == [1, 2]
    assert records[0].image_bytes == (image_root / "room.png").read_bytes()
    again = [p for r in records for p in pairs_from_corrections(corrections_from_record(r))]
    key = lambda p: (p.prompt, p.chosen, p.rejected, p.chosen_spans, p.rejected_spans)  # noqa: E731
    assert [key(p) for p in again] == [key(p) for p in correction_pairs]


def test_the_release_imports_with_its_images_and_provenance(tmp_path):
    """Release rows become items with the embedded image, the correction, and the release's own fields in
    the item's meta (idx as the int it is)."""
    path = write_rlhf_v_release(
        tmp_path / "RLHF-V-Dataset.parquet",
        [release_row(7, "What is it?", "A cat.", "A dog."), release_row(9, "Where?", "Inside.", "Outside.", "blue")],
    )
    first, second = read_rlhf_v(path)
    assert (first.external_id, first.prompt, first.responses[0].text) == ("7", "What is it?", "A dog.")
    assert first.corrections[0].corrected_text == "A cat."
    assert first.image == "7.jpg" and first.image_bytes == png("red")
    assert first.meta == {
        "ds_name": "RLHF-V",
        "origin_dataset": "RLHF-V-Hall_v0",
        "origin_split": json.dumps({"model": "Muffin", "type": "detailed_description"}),
        "idx": 7,
        "image_path": "7.jpg",
    }
    assert second.image_bytes == png("blue")


def test_given_spans_are_kept_when_they_describe_the_edit(tmp_path):
    """Spans the file gives (a whole phrase here) are used as they are, not narrowed to a diff's words."""
    rejected, chosen = "It has a red big sofa.", "It has a blue small sofa."
    path = tmp_path / "spans.jsonl"
    record = {
        "question": "q",
        "chosen": chosen,
        "rejected": rejected,
        "rejected_spans": [[9, 16]],
        "chosen_spans": [[9, 19]],
    }
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    (item,) = read_rlhf_v(path)
    (pair,) = pairs_from_corrections(corrections_from_record(item))
    assert (pair.rejected_spans, pair.chosen_spans) == ([(9, 16)], [(9, 19)])
    assert item.corrections[0].segments == [(9, 16, "blue small", "hallucination")]


def test_spans_rebuild_insertions_deletions_and_replacements():
    """A chosen span alone is an insertion, a rejected span alone a deletion, both at one place a replacement."""
    rejected, chosen = "A cat on a mat.", "A black cat on mat now."
    segments = segments_from_spans(rejected, chosen, [(9, 11)], [(2, 8), (18, 22)])
    assert segments == [
        (2, 2, "black ", "hallucination"),
        (9, 11, "", "hallucination"),
        (14, 14, " now", "hallucination"),
    ]


def test_spans_that_miss_an_edit_are_refused(tmp_path):
    """Spans in range that leave a change outside them name the record and the span field."""
    path = tmp_path / "bad.jsonl"
    record = {
        "question": "q",
        "chosen": "one two",
        "rejected": "uno dos",
        "chosen_spans": [[0, 3]],
        "rejected_spans": [[0, 3]],
    }
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match="differ outside") as caught:
        list(read_rlhf_v(path))
    assert (caught.value.line, caught.value.field) == (1, "chosen_spans")


def test_a_pair_without_an_image_is_refused_naming_its_item(tmp_path):
    """The reference loader reads `image['bytes']` on every row, so a text-only pair is refused, not written null."""
    pair = PairRow("text-1", "q", None, "right", "wrong", "pairwise")
    with pytest.raises(FormatError, match="item 'text-1' has no image: rlhf-v rows need one"):
        write_rlhf_v_parquet(rows=[pair], out_dir=tmp_path / "out", snapshot_hash="s")


def test_reads_json_lines_and_text_as_an_object(tmp_path):
    """JSON Lines with `text` as an object, or the three fields at the top level, read the same way."""
    path = tmp_path / "data.jsonl"
    lines = [
        {"image": "a.jpg", "text": {"question": "Q?", "chosen": "Right.", "rejected": "Wrong."}, "idx": 1},
        {"image_path": "b.jpg", "question": "Q2?", "chosen": "Fine now.", "rejected": "Bad now."},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    first, second = read_rlhf_v(path)
    assert (first.external_id, first.prompt, first.image, first.responses[0].text) == ("1", "Q?", "a.jpg", "Wrong.")
    assert first.corrections[0].corrected_text == "Right."
    assert (second.external_id, second.image) == ("row-2", "b.jpg")


GOOD = {"question": "q", "chosen": "c", "rejected": "r"}


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (
            "[\n" + json.dumps({"text": json.dumps(GOOD)}) + ',\n  {"text": "{not json"}\n]',
            3,
            "text",
            "invalid JSON inside text",
        ),
        ('[\n  {"text": {"question": "q", "chosen": "c"}}\n]', 2, "text.rejected", "missing"),
        ('[\n  {"question": "q", "chosen": ["c"], "rejected": "r"}\n]', 2, "chosen", "must be a string"),
        (
            "[\n" + json.dumps(GOOD) + ',\n  {"question": "q", "chosen": "c", "rejected": "r"\n]',
            4,
            None,
            "invalid JSON",
        ),
        (
            '[\n  {"question": "q", "chosen": "c", "rejected": "r", "chosen_spans": [[0, 9]]}\n]',
            2,
            "chosen_spans",
            "within the text",
        ),
        (
            '{"question": "q", "chosen": "c", "rejected": "r"}\n{"question": 1, "chosen": "c", "rejected": "r"}\n',
            2,
            "question",
            "must be a string",
        ),
    ],
    ids=["bad-inner-json", "missing-field", "wrong-type", "broken-array", "span-out-of-range", "jsonl-wrong-type"],
)
def test_bad_records_name_line_and_field(tmp_path, text, line, field, message):
    """A bad record fails with the line where it starts and the field."""
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FormatError, match=message) as caught:
        list(read_rlhf_v(path))
    assert (caught.value.line, caught.value.field) == (line, field)


def test_a_release_row_without_its_text_names_the_row(tmp_path):
    """A Parquet row whose `text` is null fails on its row number (1-based)."""
    rows = [release_row(1, "q", "c", "r"), {**release_row(2, "q", "c", "r"), "text": None}]
    with pytest.raises(FormatError) as caught:
        list(read_rlhf_v(write_rlhf_v_release(tmp_path / "bad.parquet", rows)))
    assert (caught.value.line, caught.value.field) == (2, "text")
