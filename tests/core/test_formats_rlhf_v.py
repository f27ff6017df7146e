"""RLHF-V-style JSON: corrected answers with spans out, corrections back in, the same pairs again."""

import json

import pytest
from PIL import Image

from annotation.formats import FORMAT_READERS, FORMAT_WRITERS, FormatError
from annotation.formats.convert import corrections_from_record
from annotation.formats.rlhf_v import read_rlhf_v_json, write_rlhf_v_json
from annotation.pair_rules import CorrectionInput, pairs_from_corrections


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
        CorrectionInput("room-2", "How many lamps?", "room.png", "Three lamps.", "Two lamps.", []),
    ]
    return list(pairs_from_corrections(corrections))


def test_records_look_like_the_rlhf_v_release(correction_pairs, image_root, tmp_path):
    """Each record has RLHF-V's keys, `text` holding question/chosen/rejected as JSON, plus the spans."""
    manifest = FORMAT_WRITERS["rlhf-v"](
        rows=correction_pairs, out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root
    )
    records = json.loads((tmp_path / "out" / "rlhf_v.json").read_text("utf-8"))
    assert len(records) == 2 == manifest["counts"]["rows"]
    first = records[0]
    assert {"ds_name", "image", "text", "origin_dataset", "origin_split", "idx", "image_path"} <= set(first)
    text = json.loads(first["text"])
    assert text == {
        "question": "Describe the room.",
        "chosen": correction_pairs[0].chosen,
        "rejected": correction_pairs[0].rejected,
    }
    assert (tmp_path / "out" / first["image"]).read_bytes() == (image_root / "room.png").read_bytes()
    assert [tuple(s) for s in first["chosen_spans"]] == correction_pairs[0].chosen_spans


def test_export_then_import_gives_the_same_pairs_and_spans(correction_pairs, image_root, tmp_path):
    """Export → import (as corrections) → pairs gives the same chosen, rejected and changed spans."""
    write_rlhf_v_json(rows=correction_pairs, out_dir=tmp_path / "out", snapshot_hash="s", image_root=image_root)
    records = list(FORMAT_READERS["rlhf-v"](tmp_path / "out" / "rlhf_v.json"))
    assert [r.line for r in records] == [2, 3]
    again = [p for r in records for p in pairs_from_corrections(corrections_from_record(r))]
    key = lambda p: (p.prompt, p.chosen, p.rejected, p.chosen_spans, p.rejected_spans)  # noqa: E731
    assert [key(p) for p in again] == [key(p) for p in correction_pairs]


def test_reads_json_lines_and_text_as_an_object(tmp_path):
    """JSON Lines with `text` as an object, or the three fields at the top level, read the same way."""
    path = tmp_path / "data.jsonl"
    lines = [
        {"image": "a.jpg", "text": {"question": "Q?", "chosen": "Right.", "rejected": "Wrong."}, "idx": 1},
        {"image_path": "b.jpg", "question": "Q2?", "chosen": "Fine now.", "rejected": "Bad now."},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    first, second = read_rlhf_v_json(path)
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
        list(read_rlhf_v_json(path))
    assert (caught.value.line, caught.value.field) == (line, field)
