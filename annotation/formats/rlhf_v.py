"""RLHF-V Parquet: corrected answers as rows like the `openbmb/RLHF-V-Dataset` release.

The release (and so the export) is one Parquet file with the columns `ds_name`, `image`
(`{"bytes", "path"}`, a `datasets.Image()`), `text` (JSON text of exactly `{"question", "chosen",
"rejected"}`: chosen = the corrected answer, rejected = the original), `origin_dataset`, `origin_split`
(JSON text), `idx` (int64) and `image_path`; Loupe adds `chosen_spans` and `rejected_spans`, the changed
character spans, after them. The reference loader (Muffin's `RLHFVDataset`, `muffin/data/datasets.py`)
reads it with `pandas.read_parquet` and takes `json.loads(text)`, `image["bytes"]` and the provenance
columns of every row (`json.loads(origin_split)` when it computes reference log-probabilities, where it
also asserts that `text` has exactly those three keys): so every row has an image, `text` holds nothing
else, and `origin_split` is JSON text. `tests/core/reference_loaders.py` re-implements that reading.

The reader takes the release Parquet, and also the JSON forms the release and older Loupe exports used:
a JSON array or JSON Lines of records, `text` as JSON text or an object, or `question`/`chosen`/`rejected`
at the top level, with the image as a path. Each record becomes an item whose one response (the original)
carries a correction to the chosen text; its provenance (`ds_name`, `origin_dataset`, `origin_split`,
`idx`, `image_path`) is kept in the item's meta and written back on export (`common.ReleaseFields`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from annotation.formats.common import (
    CorrectionRecord,
    FormatError,
    ItemRecord,
    ResponseRecord,
    check_type,
    is_parquet,
    iter_json_records,
    open_parquet,
    optional,
    parquet_image_cell,
    parquet_rows,
    provenance_of,
    require,
    write_release_parquet,
)
from annotation.formats.trl import PARQUET_BATCH_BYTES, PARQUET_BATCH_ROWS
from annotation.pair_rules import PairRow, Segment, apply_segments, as_pair_row, diff_segments

FILE_NAME = "rlhf_v.parquet"
RELEASE_COLUMNS = ("ds_name", "image", "text", "origin_dataset", "origin_split", "idx", "image_path")
SPAN_COLUMNS = ("chosen_spans", "rejected_spans")


def rlhf_v_features() -> Any:
    """The release's features (`idx` an int64, the rest strings but the image) and Loupe's span columns."""
    import datasets

    columns: dict[str, Any] = {name: datasets.Value("string") for name in RELEASE_COLUMNS}
    columns["image"] = datasets.Image()
    columns["idx"] = datasets.Value("int64")
    for name in SPAN_COLUMNS:
        columns[name] = datasets.List(datasets.List(datasets.Value("int64")))
    return datasets.Features(columns)


def write_rlhf_v_parquet(
    *,
    rows: Iterable[PairRow | Mapping[str, Any]],
    out_dir: Path,
    snapshot_hash: str,
    image_root: Path | None = None,
    ds_name: str = "loupe",
    batch_rows: int = PARQUET_BATCH_ROWS,
) -> dict[str, Any]:
    """`out_dir/rlhf_v.parquet` with the release's columns (images embedded) and the changed spans.

    Every pair needs an image (`FormatError` naming the first item without one), as the reference loader
    reads `image["bytes"]` on every row. `text` is written as Python's `json.dumps` writes it, as the
    RLHF-V tooling does. An `idx` kept from the import that is not an integer (an RLAIF-V idx) gives way
    to the row's position: the release's column is int64.
    """

    def columns_of(pair: PairRow, image: dict[str, Any], release: dict[str, Any], position: int) -> dict[str, Any]:
        idx = release["idx"]
        return {
            **release,
            "image": image,
            "text": json.dumps({"question": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected}),
            "idx": idx if isinstance(idx, int) and not isinstance(idx, bool) else position,
            "chosen_spans": [list(span) for span in pair.chosen_spans],
            "rejected_spans": [list(span) for span in pair.rejected_spans],
        }

    return write_release_parquet(
        rows=(as_pair_row(row) for row in rows),
        out_dir=out_dir,
        file_name=FILE_NAME,
        format_name="rlhf-v",
        features=rlhf_v_features(),
        snapshot_hash=snapshot_hash,
        image_root=image_root,
        ds_name=ds_name,
        batch_rows=batch_rows,
        batch_bytes=PARQUET_BATCH_BYTES,
        columns_of=columns_of,
    )


# ---------------------------------------------------------------------------------------------------
# Reading


def _spans(record: dict[str, Any], key: str, text: str, *, line: int) -> list[tuple[int, int]]:
    """The record's `key` spans, checked to lie within `text`, sorted, touching ones merged."""
    spans = optional(record, key, list, [], line=line)
    checked = []
    for span in spans:
        if (
            not isinstance(span, list | tuple)
            or len(span) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in span)
            or not 0 <= span[0] <= span[1] <= len(text)
        ):
            raise FormatError(
                f"each span must be [start, end] within the text (length {len(text)})", line=line, field=key
            )
        if span[1] > span[0]:
            checked.append((span[0], span[1]))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(checked):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _outside(text: str, spans: list[tuple[int, int]]) -> tuple[str, dict[int, tuple[int, int]]]:
    """The text outside `spans`, and each span keyed by how many outside characters come before it."""
    pieces, marks, cursor, coordinate = [], {}, 0, 0
    for start, end in spans:
        pieces.append(text[cursor:start])
        coordinate += start - cursor
        marks[coordinate] = (start, end)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces), marks


def segments_from_spans(
    rejected: str, chosen: str, rejected_spans: list[tuple[int, int]], chosen_spans: list[tuple[int, int]]
) -> list[Segment]:
    """The correction segments over `rejected` that the given changed spans describe, or `ValueError`.

    The spans describe the edit when the two texts agree outside them; a rejected span and a chosen span
    at the same place (the same amount of unchanged text before them) are one replacement, a rejected
    span alone a deletion, a chosen span alone an insertion.
    """
    kept_rejected, in_rejected = _outside(rejected, rejected_spans)
    kept_chosen, in_chosen = _outside(chosen, chosen_spans)
    if kept_rejected != kept_chosen:
        raise ValueError("the texts differ outside chosen_spans and rejected_spans, so the spans miss an edit")
    segments: list[Segment] = []
    removed = 0  # characters of rejected spans before the current place
    for coordinate in sorted(set(in_rejected) | set(in_chosen)):
        start, end = in_rejected.get(coordinate, (coordinate + removed, coordinate + removed))
        c_start, c_end = in_chosen.get(coordinate, (0, 0))
        segments.append((start, end, chosen[c_start:c_end], "hallucination"))
        removed += end - start
    if apply_segments(rejected, segments) != chosen:  # cannot happen when the outside texts agree
        raise ValueError("the spans do not turn rejected into chosen")
    return segments


def _record_item(record: dict[str, Any], *, line: int, image_bytes: bytes | None = None) -> ItemRecord:
    body: dict[str, Any] = record
    if "text" in record:
        text = check_type(record["text"], (str, dict), line=line, field="text")
        if isinstance(text, str):
            try:
                text = json.loads(text)
            except json.JSONDecodeError as error:
                raise FormatError(f"invalid JSON inside text: {error.msg}", line=line, field="text") from None
            if not isinstance(text, dict):
                raise FormatError("must hold a JSON object", line=line, field="text")
        body = text
    prefix = "text." if body is not record else ""
    question = require(body, "question", str, line=line, prefix=prefix)
    chosen = require(body, "chosen", str, line=line, prefix=prefix)
    rejected = require(body, "rejected", str, line=line, prefix=prefix)
    for name, value in (("chosen", chosen), ("rejected", rejected)):
        if not value.strip():
            raise FormatError("must not be empty", line=line, field=f"{prefix}{name}")
    chosen_spans = _spans(record, "chosen_spans", chosen, line=line)
    rejected_spans = _spans(record, "rejected_spans", rejected, line=line)
    if chosen_spans or rejected_spans:
        # The file marks what changed: keep its spans (a diff might draw them narrower or elsewhere).
        try:
            segments = segments_from_spans(rejected, chosen, rejected_spans, chosen_spans)
        except ValueError as error:
            raise FormatError(str(error), line=line, field="chosen_spans") from None
    else:
        segments = [(start, end, text, "hallucination") for start, end, text, _ in diff_segments(rejected, chosen)]
    image = optional(record, "image", str, None, line=line) or None
    image_path = optional(record, "image_path", str, None, line=line) or None
    idx = optional(record, "idx", (str, int), None, line=line)
    return ItemRecord(
        external_id=str(idx) if idx not in (None, "") else f"row-{line}",
        prompt=question,
        image=image or image_path,
        image_bytes=image_bytes,
        responses=[ResponseRecord(text=rejected)],
        corrections=[CorrectionRecord(response=0, corrected_text=chosen, segments=segments)],
        meta=provenance_of(record),
        line=line,
    )


def _parquet_records(path: Path, *, batch_rows: int) -> Iterator[tuple[int, dict[str, Any], bytes | None]]:
    """(row number, row with `image` as its path, image bytes) of a release Parquet file."""
    parquet = open_parquet(path, required=())
    names = parquet.schema_arrow.names
    if "text" not in names:
        for name in ("question", "chosen", "rejected"):
            if name not in names:
                raise FormatError("missing column (the release keeps the texts in `text`)", field=name)
    for line, row in enumerate(parquet_rows(parquet, batch_rows=batch_rows), start=1):
        path_in_cell, data = parquet_image_cell(row.get("image"), line=line)
        yield line, {**row, "image": path_in_cell}, data


def read_rlhf_v(path: Path, *, unique_ids: bool = True, batch_rows: int = 1000) -> Iterator[ItemRecord]:
    """Items from an RLHF-V file: the release Parquet (told by its magic bytes) or a JSON array / JSON Lines.

    Each record gives `question`, `chosen` (corrected) and `rejected` (original), inside `text` (JSON
    text or object) or at the top level. The item's one response is the original answer; its
    correction's segments are the file's `chosen_spans`/`rejected_spans` when it has them (checked to
    describe the whole edit), else a diff of the two answers (`annotation.pair_rules.diff_segments`).
    External id = `idx`, else `row-N`; an id seen twice is an error unless `unique_ids=False` (the
    caller then checks, without holding every id in memory). The line of an error is the row number
    in Parquet, the line where the record starts in JSON.
    """
    path = Path(path)
    if is_parquet(path):
        records: Iterable[tuple[int, Any, bytes | None]] = _parquet_records(path, batch_rows=batch_rows)
    else:
        records = ((line, record, None) for line, record in iter_json_records(path))
    seen_ids: set[str] = set()
    for line, record, image_bytes in records:
        if not isinstance(record, dict):
            raise FormatError("each record must be a JSON object", line=line)
        item = _record_item(record, line=line, image_bytes=image_bytes)
        if unique_ids and item.external_id in seen_ids:
            raise FormatError(f"idx {item.external_id!r} appears twice", line=line, field="idx")
        if unique_ids:
            seen_ids.add(item.external_id)
        yield item
