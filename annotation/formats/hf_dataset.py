"""Hugging Face `datasets` directory export of preference pairs (`Dataset.save_to_disk`), images embedded.

`datasets` is imported inside the writer only: it is heavy, and the web process imports this module.
"""

from __future__ import annotations

import tempfile
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from annotation.formats.common import ImageCopier, prepare_out_dir, write_manifest
from annotation.formats.trl import _padded_parts, peek, trl_features, trl_texts
from annotation.pairs import PairRow, as_pair_row


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

    Rows stream through `Dataset.from_generator` (Arrow files written in a temporary cache, never the
    whole list in memory) and are then saved with `save_to_disk`. With `conversational=True` all rows
    must agree on having an image or not, as for Parquet.
    """
    import datasets

    out_dir = prepare_out_dir(out_dir)
    first, pairs = peek(as_pair_row(r) for r in rows)
    typed_parts = bool(first is not None and first.image)
    if with_images is None:
        with_images = typed_parts
    features = trl_features(conversational=conversational, typed_parts=typed_parts, with_images=with_images)
    images = ImageCopier(out_dir, image_root=image_root)
    sources: Counter = Counter()
    seen_images: set[str] = set()

    def generate() -> Iterator[dict[str, Any]]:
        for pair in pairs:
            if conversational and bool(pair.image) != typed_parts:
                raise ValueError("a conversational dataset export needs all rows with an image or all without")
            record = trl_texts(pair, conversational=conversational)
            if conversational:
                record = {key: _padded_parts(value) for key, value in record.items()}
            if pair.image and not with_images:
                raise ValueError(f"item {pair.item_key!r} has an image, but this export has no images column")
            if with_images:
                record["images"] = []
            if pair.image:
                record["images"] = [{"bytes": images.read(pair.image), "path": Path(pair.image).name}]
                seen_images.add(pair.image)
            sources[pair.source] += 1
            yield record

    if first is None:
        empty = datasets.Dataset.from_dict({name: [] for name in features}, features=features)
        empty.save_to_disk(str(out_dir), num_shards=1)  # without a shard the directory does not load
        return _manifest(out_dir, snapshot_hash, rows=0, images=0, sources=sources)
    with tempfile.TemporaryDirectory(prefix="loupe-hf-") as cache_dir:
        # A fresh cache and a fingerprint of our own: the generator closes over a one-shot iterator,
        # which `datasets` cannot hash, and a cached result from another export must never be reused.
        dataset = datasets.Dataset.from_generator(
            generate, features=features, cache_dir=cache_dir, fingerprint=uuid.uuid4().hex
        )
        dataset.save_to_disk(str(out_dir))
        rows_written = len(dataset)
        del dataset
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
