"""Hugging Face `datasets` directory export of preference pairs (`Dataset.save_to_disk`), images embedded.

`datasets` is imported inside the writer only: it is heavy, and the web process imports this module.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from annotation.formats.common import ImageCopier, prepare_out_dir, write_manifest
from annotation.formats.trl import _padded_parts, peek, trl_features, trl_texts
from annotation.pair_rules import PairRow, as_pair_row

DATA_FILE = "data-00000-of-00001.arrow"


def write_hf_dataset(
    *,
    rows: Iterable[PairRow | Mapping[str, Any]],
    out_dir: Path,
    snapshot_hash: str,
    image_root: Path | None = None,
    conversational: bool = False,
    with_images: bool | None = None,
) -> dict[str, Any]:
    """A `datasets` directory in `out_dir` with `prompt`, `chosen`, `rejected`, `images` (a list of
    `datasets.Image()`, bytes embedded), loadable with `datasets.load_from_disk(out_dir)`. As for
    Parquet, `with_images=False` leaves the `images` column out (TRL takes any such column for images);
    by default the first row decides.

    Rows stream into the directory's Arrow file in bounded batches (never the whole list in memory); the
    layout is `save_to_disk`'s: one data shard, `dataset_info.json` and `state.json`. With
    `conversational=True` all rows must agree on having an image or not, as for Parquet.
    """
    import datasets
    from datasets.arrow_writer import ArrowWriter

    out_dir = prepare_out_dir(out_dir)
    first, pairs = peek(as_pair_row(r) for r in rows)
    typed_parts = bool(first is not None and first.image)
    if with_images is None:
        with_images = typed_parts
    features = trl_features(conversational=conversational, typed_parts=typed_parts, with_images=with_images)
    images = ImageCopier(out_dir, image_root=image_root)
    sources: Counter = Counter()
    seen_images: set[str] = set()
    # The rows go straight into the Arrow file `save_to_disk` would write (one shard), in bounded batches:
    # no cache copy to read back, and memory that does not grow with the number of rows.
    writer = ArrowWriter(
        features=features, path=str(out_dir / DATA_FILE), writer_batch_size=100 if with_images else 10_000
    )
    try:
        for pair in pairs:
            if conversational and bool(pair.image) != typed_parts:
                raise ValueError("a conversational dataset export needs all rows with an image or all without")
            if pair.image and not with_images:
                raise ValueError(f"item {pair.item_key!r} has an image, but this export has no images column")
            record = trl_texts(pair, conversational=conversational)
            if conversational:
                record = {key: _padded_parts(value) for key, value in record.items()}
            if with_images:
                record["images"] = []
            if pair.image:
                record["images"] = [{"bytes": images.read(pair.image), "path": Path(pair.image).name}]
                seen_images.add(pair.image)
            sources[pair.source] += 1
            writer.write(features.encode_example(record))
        rows_written, _bytes = writer.finalize()
    finally:
        writer.close()
    datasets.DatasetInfo(features=features).write_to_directory(str(out_dir))
    state = {
        "_data_files": [{"filename": DATA_FILE}],
        # A fresh fingerprint: the content is new, and `datasets` must never reuse a cache made from another.
        "_fingerprint": uuid.uuid4().hex[:16],
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }
    (out_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    return _manifest(out_dir, snapshot_hash, rows=rows_written, images=len(seen_images), sources=sources)


def _manifest(out_dir: Path, snapshot_hash: str, *, rows: int, images: int, sources: Counter) -> dict[str, Any]:
    files = [str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file() and p.name != "manifest.json"]
    return write_manifest(
        out_dir,
        format_name="hf-dataset",
        snapshot_hash=snapshot_hash,
        counts={"rows": rows, "images": images, "by_source": dict(sorted(sources.items()))},
        files=files,
    )
