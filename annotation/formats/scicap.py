"""SciCap figure-caption RLHF layout: a directory of images with `metadata.jsonl`.

Each line is `{"file_name", "RLHF_caption"}`, the caption starting with its `[GOOD]` or `[BAD]`
control token (see `annotation.pair_rules.sft_rows_from_ratings`). Images are copied next to
`metadata.jsonl` (once each, under content-hash names), the layout Hugging Face's `imagefolder`
loader reads.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from annotation.formats.common import ImageCopier, prepare_out_dir, write_manifest
from annotation.formats.trl import as_sft_row
from annotation.pair_rules import SFTRow

METADATA_NAME = "metadata.jsonl"


def write_scicap(
    *, rows: Iterable[SFTRow | Mapping[str, Any]], out_dir: Path, snapshot_hash: str, image_root: Path | None = None
) -> dict[str, Any]:
    """`out_dir/metadata.jsonl` plus the figure images; every row needs an image."""
    out_dir = prepare_out_dir(out_dir)
    images = ImageCopier(out_dir, image_root=image_root, subdir="")
    labels: Counter = Counter()
    files: set[str] = set()
    count = 0
    with open(out_dir / METADATA_NAME, "w", encoding="utf-8") as handle:
        for row in rows:
            sft = as_sft_row(row)
            if not sft.image:
                raise ValueError(f"SciCap rows need a figure image; item {sft.item_key!r} has none")
            file_name = images.copy(sft.image)
            if file_name.startswith(("http://", "https://")):
                raise ValueError(f"SciCap exports copy images and do not fetch URLs: {file_name}")
            files.add(file_name)
            handle.write(
                json.dumps({"file_name": file_name, "RLHF_caption": sft.completion}, ensure_ascii=False) + "\n"
            )
            labels[sft.label or "unlabeled"] += 1
            count += 1
    return write_manifest(
        out_dir,
        format_name="scicap",
        snapshot_hash=snapshot_hash,
        counts={"rows": count, "images": len(files), "by_label": dict(sorted(labels.items()))},
        files=[METADATA_NAME, *sorted(files)],
    )
