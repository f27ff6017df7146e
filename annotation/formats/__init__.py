"""Dataset formats at Loupe's edges: one module per family, plain Python (no Django, no torch).

`FORMAT_WRITERS` maps an export format name to its writer; every writer is called with keyword
arguments `rows`, `out_dir`, `snapshot_hash` (plus the format's own options, e.g. `image_root`,
`conversational`, `kind`), streams its rows into `out_dir` and writes `out_dir/manifest.json`.
`FORMAT_READERS` maps an import format name to its reader: called with the file path (and options),
it yields validated `ItemRecord`s and raises `FormatError` with the line and field of a bad record.
pyarrow and `datasets` are imported inside the functions that need them.

| export name | rows | writes |
|---|---|---|
| trl-jsonl | PairRow | pairs.jsonl (`prompt, chosen, rejected[, images]`) |
| trl-parquet | PairRow | pairs.parquet (images embedded; conversational when the pairs have images) |
| hf-dataset | PairRow | a `datasets` directory (`save_to_disk` layout; each image stored once per batch) |
| dense-jsonl | PairRow | pairs.jsonl with changed spans and all pair fields |
| rlaif-v | PairRow | rlaif_v.parquet (the RLAIF-V release's columns, provenance kept) |
| rlhf-v | PairRow | rlhf_v.parquet (the RLHF-V release's columns + spans, provenance kept) |
| caption-contest-csv | RatingAggregate | one ranked table per item + the cartoon |
| scicap | SFTRow | metadata.jsonl (`file_name, RLHF_caption`) + images |
| reward-jsonl | PairRow | reward.jsonl (`prompt, chosen, rejected, margin`) |
| sft-jsonl | SFTRow | sft.jsonl (`prompt, completion`) |
| label-studio-json | ItemRecord | tasks.json + label_config.xml + images/ |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from annotation.formats.caption_contest import read_caption_contest_csv, write_caption_contest_csv
from annotation.formats.common import (
    FORMAT_VERSION,
    CorrectionRecord,
    FormatError,
    ItemRecord,
    PairwiseRecord,
    RankingRecord,
    RatingRecord,
    ResponseRecord,
    read_manifest,
)
from annotation.formats.hf_dataset import write_hf_dataset
from annotation.formats.label_studio import read_label_studio_json, write_label_studio_json
from annotation.formats.loupe_jsonl import read_loupe_jsonl
from annotation.formats.rlaif_v import read_rlaif_v_parquet, write_rlaif_v_parquet
from annotation.formats.rlhf_v import read_rlhf_v, write_rlhf_v_parquet
from annotation.formats.scicap import write_scicap
from annotation.formats.trl import (
    read_pair_rows_jsonl,
    write_dense_jsonl,
    write_reward_jsonl,
    write_sft_jsonl,
    write_trl_jsonl,
    write_trl_parquet,
)

FORMAT_WRITERS: dict[str, Callable[..., dict[str, Any]]] = {
    "trl-jsonl": write_trl_jsonl,
    "trl-parquet": write_trl_parquet,
    "hf-dataset": write_hf_dataset,
    "dense-jsonl": write_dense_jsonl,
    "rlaif-v": write_rlaif_v_parquet,
    "rlhf-v": write_rlhf_v_parquet,
    "caption-contest-csv": write_caption_contest_csv,
    "scicap": write_scicap,
    "reward-jsonl": write_reward_jsonl,
    "sft-jsonl": write_sft_jsonl,
    "label-studio-json": write_label_studio_json,
}

FORMAT_READERS: dict[str, Callable[..., Any]] = {
    "loupe-jsonl": read_loupe_jsonl,
    "caption-contest": read_caption_contest_csv,
    "rlaif-v": read_rlaif_v_parquet,
    "rlhf-v": read_rlhf_v,
    "label-studio": read_label_studio_json,
}

__all__ = [
    "FORMAT_READERS",
    "FORMAT_VERSION",
    "FORMAT_WRITERS",
    "CorrectionRecord",
    "FormatError",
    "ItemRecord",
    "PairwiseRecord",
    "RankingRecord",
    "RatingRecord",
    "ResponseRecord",
    "read_manifest",
    "read_pair_rows_jsonl",
]
