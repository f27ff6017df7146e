"""Loupe JSONL import: items with responses, validated line by line."""

import json

import pytest

from annotation.formats import FORMAT_READERS, FormatError, ItemRecord, ResponseRecord
from annotation.formats.loupe_jsonl import read_loupe_jsonl

GOOD = {
    "external_id": "scene-1",
    "image": "images/scene-1.png",
    "prompt": "Describe the scene.",
    "responses": [{"text": "A red circle.", "model": "tiny-vlm"}, {"text": "A blue square."}],
    "meta": {"split": "train"},
}


def write_lines(path, lines):
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def test_good_lines_become_items_with_their_responses(tmp_path):
    """Each line is one item; a response without a model gets an empty model name; ids may be numbers."""
    second = {"external_id": 42, "image": None, "prompt": "Text only?", "responses": []}
    path = write_lines(tmp_path / "items.jsonl", [GOOD, "", second])
    first, other = FORMAT_READERS["loupe-jsonl"](path)
    assert first == ItemRecord(
        external_id="scene-1",
        prompt="Describe the scene.",
        image="images/scene-1.png",
        responses=[ResponseRecord("A red circle.", "tiny-vlm"), ResponseRecord("A blue square.", "")],
        meta={"split": "train"},
    )
    assert (first.line, other.line) == (1, 3)
    assert (other.external_id, other.image, other.responses) == ("42", None, [])


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [
        ('{"external_id": "x", "prompt": "p",', None, "invalid JSON"),
        ({"prompt": "p", "responses": []}, "external_id", "missing"),
        ({"external_id": "x", "responses": []}, "prompt", "missing"),
        ({"external_id": "x", "prompt": ["p"]}, "prompt", "must be a string"),
        ({"external_id": "x", "prompt": "p", "responses": "one"}, "responses", "must be a list"),
        (
            {"external_id": "x", "prompt": "p", "responses": [{"text": "a"}, {"model": "m"}]},
            "responses[1].text",
            "missing",
        ),
        ({"external_id": "x", "prompt": "p", "responses": [{"text": "  "}]}, "responses[0].text", "must not be empty"),
        (
            {"external_id": "x", "prompt": "p", "responses": [{"text": "a", "model": 3}]},
            "responses[0].model",
            "must be a string",
        ),
        ({"external_id": "x", "prompt": "p", "image": 7}, "image", "must be a string"),
        ({"external_id": "x", "prompt": "p", "meta": []}, "meta", "must be an object"),
        ({"external_id": True, "prompt": "p"}, "external_id", "must be a string or an integer"),
        ({"external_id": "scene-1", "prompt": "p"}, "external_id", "appears twice"),
        ("[1, 2]", None, "JSON object"),
    ],
)
def test_a_bad_line_names_its_line_and_field(tmp_path, bad, field, message):
    """The third line is bad: the error names line 3 and the field, and no item is yielded after it."""
    path = write_lines(tmp_path / "items.jsonl", [GOOD, {**GOOD, "external_id": "scene-2"}, bad])
    reader = read_loupe_jsonl(path)
    assert next(reader).external_id == "scene-1"
    assert next(reader).external_id == "scene-2"
    with pytest.raises(FormatError, match=message) as caught:
        next(reader)
    assert (caught.value.line, caught.value.field) == (3, field)
    assert caught.value.extra == {"line": 3, "field": field}
    assert "line 3" in str(caught.value)


def test_a_line_that_is_not_utf8_names_its_line(tmp_path):
    """Bytes that are not UTF-8 fail on the line that holds them."""
    path = tmp_path / "items.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"external_id": "caf\xe9", "prompt": "p"}\n')
    with pytest.raises(FormatError, match="UTF-8") as caught:
        list(read_loupe_jsonl(path))
    assert caught.value.line == 2


def test_what_python_writes_as_json_reads_as_python_reads_it(tmp_path):
    """Files saved by tools that start with a byte-order mark, write NaN, escape lone surrogates or carry
    integers beyond 64 bits still import, with the values Python's own json gives them."""
    lines = [
        {**GOOD, "meta": {"score": float("nan"), "seed": 2**70, "note": "caf\u00e9 \U0001f600"}},
        {**GOOD, "external_id": "scene-2", "prompt": "Odd text \ud800 here."},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    path = tmp_path / "items.jsonl"
    path.write_bytes("\ufeff".encode() + text.encode())
    first, second = read_loupe_jsonl(path)
    assert first.meta["seed"] == 2**70 and first.meta["score"] != first.meta["score"]
    assert first.meta["note"] == "caf\u00e9 \U0001f600"
    assert second.prompt == "Odd text \ud800 here."
    assert (first.line, second.line) == (1, 2)
