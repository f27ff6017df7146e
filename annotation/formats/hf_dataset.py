"""Hugging Face `datasets` directory export of preference pairs, loadable with `datasets.load_from_disk`.

The directory has `save_to_disk`'s layout (one Arrow stream file, `dataset_info.json`, `state.json`) and
the TRL columns `prompt`, `chosen`, `rejected` (+ `images`, a list of `datasets.Image()`). Images are
embedded in each row by default: `load_from_disk` memory-maps the file, so loading costs no memory
whatever its size, but a caption contest's 467 pairs (one 650 KB cartoon) take 303 MB on disk.

`images_once=True` stores each distinct image once instead: the `bytes` of the image structs are
dictionary-encoded, a record batch holding its distinct images once and the rows indexes into them, and
Arrow writes a batch's images only when they differ from the batch before; the 467 pairs take 0.8 MB,
all 57,072 pairs of that contest 17 MB instead of 37 GB. The price is paid when the folder is loaded:
`datasets` turns dictionary columns back into plain ones as it opens them, so `load_from_disk` then holds
every row's image bytes in memory (289 MB for the 467 pairs). No layout is both small on disk and
memory-mapped while `load_from_disk` still yields images (relative image paths resolve against the
working directory, absolute ones break when the folder moves), so this is the caller's choice; the
`trl-parquet` export is small on disk too (Parquet dictionary-encodes repeated bytes) and is read by
`datasets.load_dataset("parquet", ...)` into a memory-mapped cache. Batches are cut at 64 MiB of image
bytes as loaded so each stays within Arrow's 2 GiB per binary array.

`datasets` and pyarrow are imported inside the writer only: they are heavy, and the web process imports
this module.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from annotation.formats.common import ImageCopier, prepare_out_dir, write_manifest
from annotation.formats.trl import (
    PARQUET_BATCH_BYTES,
    PARQUET_BATCH_ROWS,
    _padded_parts,
    image_export_layout,
    peek,
    trl_features,
    trl_texts,
)
from annotation.pair_rules import PairRow, as_pair_row

DATA_FILE = "data-00000-of-00001.arrow"


class _ImageBatch:
    """The `images` column of one record batch: each row's image (or none) as an index into the batch's
    distinct images, which are kept once each."""

    def __init__(self) -> None:
        self.distinct: list[bytes] = []
        # The bytes the rows would hold without the dictionary: what `datasets` expands the batch to when it
        # loads it, which must stay within Arrow's 2 GiB per binary array.
        self.expanded = 0
        self._index: dict[str, int] = {}
        self._rows: list[tuple[int, str] | None] = []

    def add(self, reference: str | None, read: Any) -> None:
        if reference is None:
            self._rows.append(None)
            return
        if reference not in self._index:
            self._index[reference] = len(self.distinct)
            self.distinct.append(read(reference))
        index = self._index[reference]
        self.expanded += len(self.distinct[index])
        self._rows.append((index, Path(reference).name))

    def __len__(self) -> int:
        return len(self._rows)

    def column(self, arrow_type: Any, *, once: bool) -> Any:
        """A `list<struct<bytes, path>>` array, one list per row; with `once` the bytes are a
        `dictionary<int32, binary>` holding each distinct image once, else each row holds its own."""
        import pyarrow as pa

        offsets, indexes, names = [0], [], []
        for row in self._rows:
            if row is not None:
                indexes.append(row[0])
                names.append(row[1])
            offsets.append(len(indexes))
        if once:
            data = pa.DictionaryArray.from_arrays(pa.array(indexes, pa.int32()), pa.array(self.distinct, pa.binary()))
        else:
            data = pa.array([self.distinct[i] for i in indexes], pa.binary())
        structs = pa.StructArray.from_arrays([data, pa.array(names, pa.string())], names=["bytes", "path"])
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), structs).cast(arrow_type)


def _dictionary_images_schema(features: Any) -> Any:
    """The features' Arrow schema with the image bytes dictionary-encoded (metadata kept, so `datasets`
    still reads the column as a list of images)."""
    import pyarrow as pa

    schema = features.arrow_schema
    image = pa.struct([("bytes", pa.dictionary(pa.int32(), pa.binary())), ("path", pa.string())])
    return schema.set(schema.get_field_index("images"), pa.field("images", pa.list_(image)))


def write_hf_dataset(
    *,
    rows: Iterable[PairRow | Mapping[str, Any]],
    out_dir: Path,
    snapshot_hash: str,
    image_root: Path | None = None,
    conversational: bool | None = None,
    with_images: bool | None = None,
    images_once: bool = False,
    batch_rows: int = PARQUET_BATCH_ROWS,
) -> dict[str, Any]:
    """A `datasets` directory in `out_dir` with `prompt`, `chosen`, `rejected`, `images`, loadable with
    `datasets.load_from_disk(out_dir)`.

    As for Parquet, `with_images=False` leaves the `images` column out (TRL takes any such column for
    images; by default the first row decides), and the export is conversational exactly when it has
    images unless `conversational` says otherwise (`trl.image_export_layout`: the form trl's vision
    collator trains on). `images_once` stores each distinct image once (see the module docstring for what
    that costs at load). Rows stream into the Arrow file in batches of at most `batch_rows` rows or
    64 MiB of image bytes as loaded (never the whole list in memory).
    """
    import datasets
    import pyarrow as pa

    out_dir = prepare_out_dir(out_dir)
    first, pairs = peek(as_pair_row(r) for r in rows)
    conversational, with_images = image_export_layout(first, conversational=conversational, with_images=with_images)
    features = trl_features(conversational=conversational, typed_parts=with_images, with_images=with_images)
    text_schema = datasets.Features({k: v for k, v in features.items() if k != "images"}).arrow_schema
    schema = _dictionary_images_schema(features) if with_images and images_once else features.arrow_schema
    images = ImageCopier(out_dir, image_root=image_root)
    sources: Counter = Counter()
    seen_images: set[str] = set()
    count = 0
    batch: list[dict[str, Any]] = []
    image_batch = _ImageBatch()
    with pa.OSFile(str(out_dir / DATA_FILE), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:

        def flush() -> None:
            nonlocal batch, image_batch
            if not batch:
                return
            columns = pa.Table.from_pylist(batch, schema=text_schema).columns
            if with_images:
                columns.append(image_batch.column(schema.field("images").type, once=images_once))
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            batch, image_batch = [], _ImageBatch()

        for pair in pairs:
            if pair.image and not with_images:
                raise ValueError(f"item {pair.item_key!r} has an image, but this export has no images column")
            record = trl_texts(pair, conversational=conversational, typed_parts=with_images)
            if conversational:
                record = {key: _padded_parts(value) for key, value in record.items()}
            batch.append(record)
            if with_images:
                image_batch.add(pair.image or None, images.read)
            if pair.image:
                seen_images.add(pair.image)
            sources[pair.source] += 1
            count += 1
            if len(batch) >= batch_rows or image_batch.expanded >= PARQUET_BATCH_BYTES:
                flush()
        flush()
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
    files = [str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file() and p.name != "manifest.json"]
    return write_manifest(
        out_dir,
        format_name="hf-dataset",
        snapshot_hash=snapshot_hash,
        counts={"rows": count, "images": len(seen_images), "by_source": dict(sorted(sources.items()))},
        files=files,
        extra={"conversational": conversational, "images_once": images_once},
    )
