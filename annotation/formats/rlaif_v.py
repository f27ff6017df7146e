"""RLAIF-V Parquet: one preference pair per row, laid out like the `openbmb/RLAIF-V-Dataset` release.

Columns, in the release's order and types (all strings but the image): `ds_name`, `image`
(`{"bytes", "path"}`, a `datasets.Image()`), `question`, `chosen`, `rejected`, `origin_dataset`,
`origin_split`, `idx`, `image_path`. RLAIF-V's `RLAIFVDataset` (`muffin/data/datasets.py`) loads the
export folder with `datasets.load_dataset(folder)`, casts `image` to undecoded bytes and reads
`image["bytes"]`, the texts and the provenance columns of every row (`json.loads(origin_split)` when it
computes reference log-probabilities): so every row has an image and `origin_split` is JSON text.
`tests/core/reference_loaders.py` re-implements that reading.

On import each row becomes one item with its two responses and a judgment for `chosen`; the row's
provenance (`ds_name`, `origin_dataset`, `origin_split`, `idx`, `image_path`) is kept in the item's meta
and written back on export (`common.ReleaseFields`), so a release survives import → snapshot → export.
Written and read in bounded batches with pyarrow (imported inside the functions).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from annotation.formats.common import (
    FormatError,
    ItemRecord,
    PairwiseRecord,
    ResponseRecord,
    check_type,
    open_parquet,
    parquet_image_cell,
    parquet_rows,
    provenance_of,
    write_release_parquet,
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
    """`out_dir/rlaif_v.parquet` with the RLAIF-V release's columns, images embedded.

    Every pair needs an image (`FormatError` naming the first item without one): the reference loader
    reads `image["bytes"]` on every row, and the release has no text-only rows.
    """

    def columns_of(pair: PairRow, image: dict[str, Any], release: dict[str, Any], _position: int) -> dict[str, Any]:
        texts = {"question": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected}
        return {**release, "image": image, **texts, "idx": str(release["idx"])}

    return write_release_parquet(
        rows=(as_pair_row(row) for row in rows),
        out_dir=out_dir,
        file_name=FILE_NAME,
        format_name="rlaif-v",
        features=rlaif_v_features(),
        snapshot_hash=snapshot_hash,
        image_root=image_root,
        ds_name=ds_name,
        batch_rows=batch_rows,
        batch_bytes=PARQUET_BATCH_BYTES,
        columns_of=columns_of,
    )


def read_rlaif_v_parquet(path: Path, *, batch_rows: int = 1000, unique_ids: bool = True) -> Iterator[ItemRecord]:
    """Items from an RLAIF-V Parquet file, read `batch_rows` rows at a time.

    `question`, `chosen` and `rejected` are required text columns; `image`, `image_path`, `idx`,
    `ds_name`, `origin_dataset`, `origin_split` are optional. The line of an error is the row number
    (1-based). Each row is one item (external id = `idx`, else `row-N`) with responses
    `[chosen, rejected]` and one judgment preferring the first; the provenance columns go to the item's
    meta as the file has them. An id seen twice is an error unless `unique_ids=False` (the caller then
    checks, without holding every id in memory).
    """
    parquet = open_parquet(path, required=("question", "chosen", "rejected"))
    names = set(parquet.schema_arrow.names)
    wanted = [name for name in COLUMNS if name in names]
    seen_ids: set[str] = set()
    for line, row in enumerate(parquet_rows(parquet, batch_rows=batch_rows, columns=wanted), start=1):
        texts = {}
        for name in ("question", "chosen", "rejected"):
            if row.get(name) is None:
                raise FormatError("missing", line=line, field=name)
            texts[name] = check_type(row[name], str, line=line, field=name)
            if name != "question" and not texts[name].strip():
                raise FormatError("must not be empty", line=line, field=name)
        image_path, image_bytes = parquet_image_cell(row.get("image"), line=line)
        if row.get("image_path"):
            image_path = check_type(row["image_path"], str, line=line, field="image_path")
        idx = row.get("idx")
        external_id = str(idx) if idx not in (None, "") else f"row-{line}"
        if unique_ids and external_id in seen_ids:
            raise FormatError(f"idx {external_id!r} appears twice", line=line, field="idx")
        if unique_ids:
            seen_ids.add(external_id)
        yield ItemRecord(
            external_id=external_id,
            prompt=texts["question"],
            image=image_path,
            image_bytes=image_bytes,
            responses=[ResponseRecord(text=texts["chosen"]), ResponseRecord(text=texts["rejected"])],
            pairwise=[PairwiseRecord(response_a=0, response_b=1, choice="a")],
            meta=provenance_of(row),
            line=line,
        )
