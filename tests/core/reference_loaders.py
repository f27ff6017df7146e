"""The reading code of the loaders researchers train with, re-implemented for tests of Loupe's exports.

The originals are not installable (they live in training repositories with their own model code), so the
lines that read the data are repeated here as they are written there, and tests run them on exports:

- Muffin's `RLHFVDataset.__getitem__` and `muffin_inference_logp.PreferenceInferenceDataset` (thunlp/Muffin,
  RLHF-V): `pd.read_parquet`, `json.loads(sample['text'])` with exactly question/chosen/rejected (the
  assert in `write_logp_to_preference_parquet`), `image['bytes']` opened as an RGB image,
  `json.loads(sample['origin_split'])`, `sample['idx']`, `sample['image_path']`, `sample['origin_dataset']`.
- RLAIF-V's `RLAIFVDataset` (RLHF-V/RLAIF-V `muffin/data/datasets.py`): `datasets.load_dataset(data_dir)`
  on the folder's Parquet files, `cast_column("image", Image(decode=False))`, then per row the same fields
  (the inference pass reads `origin_split` as JSON; the training pass tolerates missing columns).
- trl's `DataCollatorForVisionPreference` (trl 1.16, installed): run as it is on a batch of rows.

`write_rlhf_v_release` and `write_rlaif_v_release` write small files with the releases' schemas
(`openbmb/RLHF-V-Dataset`, `openbmb/RLAIF-V-Dataset` dataset cards: `idx` int64 in RLHF-V, a string in
RLAIF-V; the image a `{"bytes", "path"}` struct), for import tests.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from PIL import Image


def _rgb(buffer: bytes) -> Image.Image:
    # muffin.data.datasets.bytes_to_PIL_image
    image_io = io.BytesIO(buffer)
    image_io.seek(0)
    return Image.open(image_io).convert("RGB")


def _data_dict(sample: Any, question: str, chosen: str, rejected: str) -> dict[str, Any]:
    # The `data_dict` both loaders build (RLHFVDataset / RLAIFVDataset `__getitem__`), with the metainfo of
    # the log-prob pass (`PreferenceInferenceDataset`), which reads every provenance column directly.
    return {
        "image": _rgb(sample["image"]["bytes"]),
        "question": {"from": "human", "value": f"<image>\n{question}"},
        "chosen": {"from": "gpt", "value": chosen},
        "rejected": {"from": "gpt", "value": rejected},
        "idx": sample["idx"],
        "metainfo": {
            "origin_dataset": sample["origin_dataset"],
            "origin_split": json.loads(sample["origin_split"]),
            "origin_idx": sample["idx"],
            "image_id": sample["image_path"],
        },
        "ds_name": sample["ds_name"],
    }


def rlhf_v_samples(parquet_path: Path) -> list[dict[str, Any]]:
    """Every row of an RLHF-V Parquet file as `RLHFVDataset` and its log-prob pass read it."""
    import pandas as pd

    data = pd.read_parquet(parquet_path)
    samples = []
    for index in range(len(data)):
        sample = data.iloc[index]
        text = json.loads(sample["text"])
        # write_logp_to_preference_parquet: the text must hold exactly these keys, in this order.
        assert list(text.keys()) == ["question", "chosen", "rejected"], f"Undefined data structure, got {text.keys()}"
        samples.append(_data_dict(sample, text["question"], text["chosen"], text["rejected"]))
    return samples


def rlaif_v_samples(data_dir: Path, *, cache_dir: Path) -> list[dict[str, Any]]:
    """Every row of an RLAIF-V export folder as `RLAIFVDataset` (and its log-prob pass) read it."""
    import datasets as hf_datasets

    data = hf_datasets.load_dataset(str(data_dir), cache_dir=str(cache_dir))["train"].cast_column(
        "image", hf_datasets.Image(decode=False)
    )
    samples = []
    for index in range(len(data)):
        sample = data[index]
        samples.append(_data_dict(sample, sample["question"], sample["chosen"], sample["rejected"]))
    return samples


def trl_vision_collate(rows: list[dict[str, Any]], *, processor_dir: Path) -> dict[str, Any]:
    """trl's own vision preference collator on `rows` (dataset rows as `datasets` yields them)."""
    from transformers import AutoProcessor
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    processor = AutoProcessor.from_pretrained(processor_dir)
    return DataCollatorForVisionPreference(processor=processor)([dict(row) for row in rows])


def write_rlhf_v_release(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A Parquet file with the RLHF-V release's columns and types (as `datasets` writes it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from annotation.formats.rlhf_v import RELEASE_COLUMNS, rlhf_v_features

    schema = rlhf_v_features().arrow_schema
    release = pa.schema([schema.field(name) for name in RELEASE_COLUMNS], metadata=schema.metadata)
    pq.write_table(pa.Table.from_pylist(rows, schema=release), path)
    return path


def write_rlaif_v_release(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A Parquet file with the RLAIF-V release's columns and types (as `datasets` writes it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from annotation.formats.rlaif_v import rlaif_v_features

    pq.write_table(pa.Table.from_pylist(rows, schema=rlaif_v_features().arrow_schema), path)
    return path
