"""RLHF-V-style JSON: corrected answers as records like the `openbmb/RLHF-V-Dataset` release.

A record: `ds_name`, `image` (path of the image, copied into the export), `text` (JSON text with
`question`, `chosen` = the corrected answer, `rejected` = the original), `origin_dataset`,
`origin_split` (JSON text), `idx`, `image_path`; Loupe adds `chosen_spans` and `rejected_spans`, the
changed character spans. The file is a JSON array written record by record. The reader also takes JSON
Lines, `text` as an object, or `question`/`chosen`/`rejected` at the top level, and imports each record
as an item whose one response (the original) carries a correction to the chosen text.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from annotation.formats.common import (
    CorrectionRecord,
    FormatError,
    ImageCopier,
    ItemRecord,
    JsonArrayWriter,
    ResponseRecord,
    check_type,
    iter_json_records,
    optional,
    prepare_out_dir,
    require,
    write_manifest,
)
from annotation.pair_rules import PairRow, as_pair_row, diff_segments

FILE_NAME = "rlhf_v.json"


def write_rlhf_v_json(
    *,
    rows: Iterable[PairRow | Mapping[str, Any]],
    out_dir: Path,
    snapshot_hash: str,
    image_root: Path | None = None,
    ds_name: str = "loupe",
) -> dict[str, Any]:
    """`out_dir/rlhf_v.json` (a JSON array, streamed) and the images under `out_dir/images/`."""
    out_dir = prepare_out_dir(out_dir)
    images = ImageCopier(out_dir, image_root=image_root)
    sources: Counter = Counter()
    with JsonArrayWriter(out_dir / FILE_NAME) as writer:
        for row in rows:
            pair = as_pair_row(row)
            text = {"question": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected}
            origin = {
                "item_key": pair.item_key,
                "source": pair.source,
                "margin": pair.margin,
                "agreement": pair.agreement,
                "n_votes": pair.n_votes,
            }
            writer.write(
                {
                    "ds_name": ds_name,
                    "image": images.copy(pair.image),
                    "text": json.dumps(text, ensure_ascii=False),
                    "origin_dataset": str(pair.meta.get("origin_dataset", "loupe")),
                    "origin_split": json.dumps(origin, ensure_ascii=False),
                    "idx": writer.count,
                    "image_path": pair.image or "",
                    "chosen_spans": [list(span) for span in pair.chosen_spans],
                    "rejected_spans": [list(span) for span in pair.rejected_spans],
                }
            )
            sources[pair.source] += 1
        count = writer.count
    files = [FILE_NAME] + sorted(f"images/{p.name}" for p in (out_dir / "images").glob("*"))
    return write_manifest(
        out_dir,
        format_name="rlhf-v",
        snapshot_hash=snapshot_hash,
        counts={"rows": count, "images": images.count, "by_source": dict(sorted(sources.items()))},
        files=files,
    )


def _check_spans(record: dict[str, Any], key: str, text: str, *, line: int) -> None:
    spans = optional(record, key, list, [], line=line)
    for span in spans:
        if (
            not isinstance(span, list)
            or len(span) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in span)
            or not 0 <= span[0] <= span[1] <= len(text)
        ):
            raise FormatError(
                f"each span must be [start, end] within the text (length {len(text)})", line=line, field=key
            )


def read_rlhf_v_json(path: Path, *, unique_ids: bool = True) -> Iterator[ItemRecord]:
    """Items from an RLHF-V-style JSON array (or JSON Lines) file, validated record by record.

    Each record gives `question`, `chosen` (corrected) and `rejected` (original) — inside `text` (JSON
    text or object) or at the top level. The item's one response is the original answer; its
    correction's segments come from a diff of the two answers (`annotation.pair_rules.diff_segments`).
    External id = `idx`, else `row-N`; an id seen twice is an error unless `unique_ids=False` (the
    caller then checks, without holding every id in memory).
    """
    seen_ids: set[str] = set()
    for line, record in iter_json_records(Path(path)):
        if not isinstance(record, dict):
            raise FormatError("each record must be a JSON object", line=line)
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
        _check_spans(record, "chosen_spans", chosen, line=line)
        _check_spans(record, "rejected_spans", rejected, line=line)
        image = optional(record, "image", str, None, line=line) or None
        image_path = optional(record, "image_path", str, None, line=line) or None
        idx = optional(record, "idx", (str, int), None, line=line)
        external_id = str(idx) if idx not in (None, "") else f"row-{line}"
        if unique_ids and external_id in seen_ids:
            raise FormatError(f"idx {external_id!r} appears twice", line=line, field="idx")
        if unique_ids:
            seen_ids.add(external_id)
        meta = {
            key: record[key] for key in ("ds_name", "origin_dataset", "origin_split") if record.get(key) is not None
        }
        if image_path:
            meta["image_path"] = image_path
        segments = [
            (start, end, replacement, "hallucination") for start, end, replacement, _ in diff_segments(rejected, chosen)
        ]
        yield ItemRecord(
            external_id=external_id,
            prompt=question,
            image=image or image_path,
            responses=[ResponseRecord(text=rejected)],
            corrections=[CorrectionRecord(response=0, corrected_text=chosen, segments=segments)],
            meta=meta,
            line=line,
        )
