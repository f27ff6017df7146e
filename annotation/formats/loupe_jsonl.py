"""Loupe JSON Lines: Loupe's own import of items and model responses (design.md §6).

One object per line: `{"external_id", "image", "prompt", "responses": [{"text", "model"}], "meta": {}}`.
`image` is a path inside the uploaded archive or an http(s) URL (fetching and checking it is the import
service's job); it may be null for text-only items. `responses` may be empty (an item waiting for
answers to be generated). `gold` (optional) marks a gold task with its known answer (see
`annotation.gold_rules`; correction and rating items with several responses give a list, one answer or
null per response). Unknown keys are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from annotation.formats.common import (
    FormatError,
    ItemRecord,
    ResponseRecord,
    iter_jsonl,
    optional,
    require,
)


def read_loupe_jsonl(path: Path, *, unique_ids: bool = True) -> Iterator[ItemRecord]:
    """Items from a Loupe JSONL file, read and validated one line at a time.

    Raises `FormatError` naming the line and field (`responses[2].text` style) of the first problem:
    broken JSON, a missing or mistyped field, an empty response text, or an external id seen before
    (`unique_ids=False` leaves that check to the caller, whose memory then need not hold every id).
    """
    seen_ids: set[str] = set()
    # The checks below take the common, well-typed case inline and hand anything else to `require` and
    # `optional`, which raise the error naming the field: imports of 100k lines spend their time here.
    for line, record in iter_jsonl(Path(path)):
        if type(record) is not dict:
            raise FormatError("each line must be a JSON object", line=line)
        external_id = record.get("external_id")
        if type(external_id) is not str and type(external_id) is not int:
            external_id = require(record, "external_id", (str, int), line=line)
        external_id = str(external_id).strip()
        if not external_id:
            raise FormatError("must not be empty", line=line, field="external_id")
        if unique_ids and external_id in seen_ids:
            raise FormatError(f"{external_id!r} appears twice in the file", line=line, field="external_id")
        if unique_ids:
            seen_ids.add(external_id)
        prompt = record.get("prompt")
        if type(prompt) is not str:
            prompt = require(record, "prompt", str, line=line)
        image = record.get("image")
        if image is not None and type(image) is not str:
            optional(record, "image", str, None, line=line)
        given = record.get("responses")
        if given is None:
            given = []
        elif type(given) is not list:
            optional(record, "responses", list, [], line=line)
        responses = [_response(response, index, line) for index, response in enumerate(given)]
        meta = record.get("meta")
        if meta is None:
            meta = {}
        elif type(meta) is not dict:
            optional(record, "meta", dict, {}, line=line)
        yield ItemRecord(
            external_id=external_id,
            prompt=prompt,
            image=image or None,
            responses=responses,
            meta=meta,
            line=line,
            gold=record.get("gold"),
        )


def _response(response: object, index: int, line: int) -> ResponseRecord:
    prefix = f"responses[{index}]."
    if type(response) is not dict:
        raise FormatError("must be an object with text and model", line=line, field=f"responses[{index}]")
    text = response.get("text")
    if type(text) is not str:
        text = require(response, "text", str, line=line, prefix=prefix)
    if not text.strip():
        raise FormatError("must not be empty", line=line, field=f"{prefix}text")
    model = response.get("model")
    if model is None:
        model = ""
    elif type(model) is not str:
        optional(response, "model", str, "", line=line, prefix=prefix)
    meta = response.get("meta")
    if meta is None:
        meta = {}
    elif type(meta) is not dict:
        optional(response, "meta", dict, {}, line=line, prefix=prefix)
    return ResponseRecord(text=text, model=model, meta=meta)
