"""RLAIF-V-style Parquet: one preference pair per row, laid out like `openbmb/RLAIF-V-Dataset`.

Columns: `ds_name`, `image` (`{"bytes", "path"}`, a `datasets.Image()`), `question`, `chosen`,
`rejected`, `origin_dataset`, `origin_split` (JSON text: Loupe's source, margin, agreement, votes,
item key), `idx`, `image_path`. Written and read in bounded batches with pyarrow (imported inside the
functions). On import each row becomes one item with its two responses and a judgment for `chosen`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from annotation.formats.common import (
    FormatError,
    ImageCopier,
    ItemRecord,
    PairwiseRecord,
    ResponseRecord,
    check_type,
    prepare_out_dir,
    write_manifest,
)
from annotation.formats.trl import PARQUET_BATCH_BYTES, PARQUET_BATCH_ROWS
from annotation.pair_rules import PairRow, as_pair_row

FILE_NAME = "rlaif_v.parquet"
COLUMNS = (
    "ds_name",
    "image",
    "question",
    "chosen",
    "rejected",
    "origin_dataset",
    "origin_split",
    "idx",
    "image_path",
)


def rlaif_v_features() -> Any:
    import datasets

    string = datasets.Value("string")
    return datasets.Features({name: datasets.Image() if name == "image" else string for name in COLUMNS})


def write_rlaif_v_parquet(
    *,
    rows: Iterable[PairRow | Mapping[str, Any]],
    out_dir: Path,
    snapshot_hash: str,
    image_root: Path | None = None,
    ds_name: str = "loupe",
    batch_rows: int = PARQUET_BATCH_ROWS,
) -> dict[str, Any]:
    """`out_dir/rlaif_v.parquet` with the RLAIF-V dataset's columns, images embedded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir = prepare_out_dir(out_dir)
    schema = rlaif_v_features().arrow_schema
    images = ImageCopier(out_dir, image_root=image_root)
    sources: Counter = Counter()
    seen_images: set[str] = set()
    count = 0
    batch: list[dict[str, Any]] = []
    batch_bytes = 0
    with pq.ParquetWriter(out_dir / FILE_NAME, schema) as writer:
        for row in rows:
            pair = as_pair_row(row)
            image = None
            if pair.image:
                data = images.read(pair.image)
                image = {"bytes": data, "path": Path(pair.image).name}
                batch_bytes += len(data)
                seen_images.add(pair.image)
            origin = {
                "item_key": pair.item_key,
                "source": pair.source,
                "margin": pair.margin,
                "agreement": pair.agreement,
                "n_votes": pair.n_votes,
            }
            batch.append(
                {
                    "ds_name": ds_name,
                    "image": image,
                    "question": pair.prompt,
                    "chosen": pair.chosen,
                    "rejected": pair.rejected,
                    "origin_dataset": str(pair.meta.get("origin_dataset", "loupe")),
                    "origin_split": json.dumps(origin, ensure_ascii=False),
                    "idx": str(count),
                    "image_path": pair.image or "",
                }
            )
            sources[pair.source] += 1
            count += 1
            if len(batch) >= batch_rows or batch_bytes >= PARQUET_BATCH_BYTES:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch, batch_bytes = [], 0
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return write_manifest(
        out_dir,
        format_name="rlaif-v",
        snapshot_hash=snapshot_hash,
        counts={"rows": count, "images": len(seen_images), "by_source": dict(sorted(sources.items()))},
        files=[FILE_NAME],
    )


def _image_cell(value: Any, *, line: int) -> tuple[str | None, bytes | None]:
    """(path, bytes) of an image cell: a `{"bytes", "path"}` struct, a path string, or null."""
    if value is None:
        return None, None
    if isinstance(value, str):
        return value or None, None
    check_type(value, dict, line=line, field="image")
    data, path = value.get("bytes"), value.get("path")
    if data is not None and not isinstance(data, bytes):
        raise FormatError("image bytes must be binary", line=line, field="image.bytes")
    if path is not None and not isinstance(path, str):
        raise FormatError("must be a string", line=line, field="image.path")
    if data is None and not path:
        raise FormatError("an image needs bytes or a path", line=line, field="image")
    return path or None, data


def read_rlaif_v_parquet(path: Path, *, batch_rows: int = 1000, unique_ids: bool = True) -> Iterator[ItemRecord]:
    """Items from an RLAIF-V-style Parquet file, read `batch_rows` rows at a time.

    `question`, `chosen` and `rejected` are required text columns; `image`, `image_path`, `idx`,
    `ds_name`, `origin_dataset`, `origin_split` are optional. The line of an error is the row number
    (1-based). Each row is one item (external id = `idx`, else `row-N`) with responses
    `[chosen, rejected]` and one judgment preferring the first. An id seen twice is an error unless
    `unique_ids=False` (the caller then checks, without holding every id in memory).
    """
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise FormatError(f"not a readable Parquet file: {error}") from None
    names = set(parquet.schema_arrow.names)
    for required in ("question", "chosen", "rejected"):
        if required not in names:
            raise FormatError("missing column", field=required)
    wanted = [name for name in COLUMNS if name in names]
    seen_ids: set[str] = set()
    line = 0
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
        for row in batch.to_pylist():
            line += 1
            texts = {}
            for name in ("question", "chosen", "rejected"):
                if row.get(name) is None:
                    raise FormatError("missing", line=line, field=name)
                texts[name] = check_type(row[name], str, line=line, field=name)
                if name != "question" and not texts[name].strip():
                    raise FormatError("must not be empty", line=line, field=name)
            image_path, image_bytes = _image_cell(row.get("image"), line=line)
            if row.get("image_path"):
                image_path = check_type(row["image_path"], str, line=line, field="image_path")
            idx = row.get("idx")
            external_id = str(idx) if idx not in (None, "") else f"row-{line}"
            if unique_ids and external_id in seen_ids:
                raise FormatError(f"idx {external_id!r} appears twice", line=line, field="idx")
            if unique_ids:
                seen_ids.add(external_id)
            meta = {key: row[key] for key in ("ds_name", "origin_dataset", "origin_split") if row.get(key) is not None}
            yield ItemRecord(
                external_id=external_id,
                prompt=texts["question"],
                image=image_path,
                image_bytes=image_bytes,
                responses=[ResponseRecord(text=texts["chosen"]), ResponseRecord(text=texts["rejected"])],
                pairwise=[PairwiseRecord(response_a=0, response_b=1, choice="a")],
                meta=meta,
                line=line,
            )
