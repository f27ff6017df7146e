"""TRL-style exports: preference pairs (JSONL, Parquet), dense pairs with spans, reward rows, SFT rows.

Each writer streams its rows to `out_dir` (JSONL one line at a time, Parquet in bounded batches) and
writes `manifest.json` beside them. Field names follow TRL's dataset formats: `prompt`, `chosen`,
`rejected` (+ `images`, a list, for vision-language models); reward rows add `margin`; SFT rows are
`prompt`, `completion`. With `conversational=True` texts become message lists — content as typed parts
(`{"type": "image"}`, `{"type": "text", ...}`) when the row has an image, as a plain string otherwise.
The Parquet (and datasets) exports of pairs with images are conversational unless told otherwise: trl's
vision collator trains on that form only (`image_export_layout`).

Images: JSONL exports copy each image once into `out_dir/images/` and refer to it by relative path;
Parquet embeds the bytes (`{"bytes", "path"}` structs) and carries the Hugging Face feature metadata, so
`datasets.load_dataset("parquet", ...)` decodes them as images.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from annotation.formats.common import (
    FormatError,
    ImageCopier,
    check_type,
    iter_jsonl,
    json_line,
    optional,
    prepare_out_dir,
    require,
    write_manifest,
)
from annotation.pair_rules import PairRow, SFTRow, as_pair_row

PARQUET_BATCH_ROWS = 10_000
# Rows with embedded images are flushed by size too, so a batch never holds gigabytes of images.
PARQUET_BATCH_BYTES = 64 * 1024 * 1024


def user_message(prompt: str, *, has_image: bool) -> list[dict[str, Any]]:
    if has_image:
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    return [{"role": "user", "content": prompt}]


def assistant_message(text: str, *, has_image: bool) -> list[dict[str, Any]]:
    if has_image:
        return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]
    return [{"role": "assistant", "content": text}]


def trl_texts(pair: PairRow, *, conversational: bool, typed_parts: bool | None = None) -> dict[str, Any]:
    """`prompt`, `chosen`, `rejected` of a pair in TRL's standard or conversational form.

    In conversational form, content is a list of typed parts when `typed_parts` (default: when the pair
    has an image), the image part only in rows with an image: a column layout shared by all rows of a
    Parquet or datasets export, with or without images."""
    if not conversational:
        return {"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected}
    has_image = bool(pair.image)
    if typed_parts is None or typed_parts == has_image:
        return {
            "prompt": user_message(pair.prompt, has_image=has_image),
            "chosen": assistant_message(pair.chosen, has_image=has_image),
            "rejected": assistant_message(pair.rejected, has_image=has_image),
        }
    if not typed_parts:
        raise ValueError(f"item {pair.item_key!r} has an image, but this export has no images column")
    return {
        "prompt": [{"role": "user", "content": [{"type": "text", "text": pair.prompt}]}],
        "chosen": assistant_message(pair.chosen, has_image=True),
        "rejected": assistant_message(pair.rejected, has_image=True),
    }


def image_export_layout(
    first: PairRow | None, *, conversational: bool | None, with_images: bool | None
) -> tuple[bool, bool]:
    """`(conversational, with_images)` of a Parquet or datasets export, defaults filled in.

    `with_images` defaults to whether the first row has an image (the exports service passes whether any
    row has one). `conversational` defaults to `with_images`: trl's vision collator
    (`DataCollatorForVisionPreference`) hands the standard form's prompt to the processor as it is, and
    the processor refuses a prompt without its model's own image token ("0 <image> tokens and 8 images"),
    which no export can know; in conversational form trl places the images through the chat template.
    """
    if with_images is None:
        with_images = bool(first is not None and first.image)
    if conversational is None:
        conversational = with_images
    return conversational, with_images


def _pair_counts(sources: Counter, rows: int, images: int) -> dict[str, Any]:
    return {"rows": rows, "images": images, "by_source": dict(sorted(sources.items()))}


def _write_jsonl(
    *,
    rows: Iterable[Any],
    out_dir: Path,
    file_name: str,
    format_name: str,
    snapshot_hash: str,
    image_root: Path | None,
    to_record: Any,
    source_of: Any,
) -> dict[str, Any]:
    out_dir = prepare_out_dir(out_dir)
    images = ImageCopier(out_dir, image_root=image_root)
    sources: Counter = Counter()
    count = 0
    with open(out_dir / file_name, "wb") as handle:
        for row in rows:
            record = to_record(row, images)
            handle.write(json_line(record))
            sources[source_of(row)] += 1
            count += 1
    files = [file_name] + sorted({f"{images.subdir}/{p.name}" for p in (out_dir / "images").glob("*")})
    return write_manifest(
        out_dir,
        format_name=format_name,
        snapshot_hash=snapshot_hash,
        counts=_pair_counts(sources, count, images.count),
        files=files,
    )


def write_trl_jsonl(
    *,
    rows: Iterable[PairRow | Mapping[str, Any]],
    out_dir: Path,
    snapshot_hash: str,
    image_root: Path | None = None,
    conversational: bool = False,
) -> dict[str, Any]:
    """`out_dir/pairs.jsonl`: one `{"prompt", "chosen", "rejected"[, "images"]}` per line."""

    def to_record(pair: PairRow, images: ImageCopier) -> dict[str, Any]:
        record = trl_texts(pair, conversational=conversational)
        if pair.image:
            record["images"] = [images.copy(pair.image)]
        return record

    return _write_jsonl(
        rows=(as_pair_row(r) for r in rows),
        out_dir=out_dir,
        file_name="pairs.jsonl",
        format_name="trl-jsonl",
        snapshot_hash=snapshot_hash,
        image_root=image_root,
        to_record=to_record,
        source_of=lambda pair: pair.source,
    )


def dense_record(pair: PairRow, image: str | None) -> dict[str, Any]:
    return {
        "item_key": pair.item_key,
        "prompt": pair.prompt,
        "chosen": pair.chosen,
        "rejected": pair.rejected,
        "images": [image] if image else [],
        "source": pair.source,
        "margin": pair.margin,
        "agreement": pair.agreement,
        "n_votes": pair.n_votes,
        "chosen_spans": [list(span) for span in pair.chosen_spans],
        "rejected_spans": [list(span) for span in pair.rejected_spans],
        "meta": pair.meta,
    }


def write_dense_jsonl(
    *, rows: Iterable[PairRow | Mapping[str, Any]], out_dir: Path, snapshot_hash: str, image_root: Path | None = None
) -> dict[str, Any]:
    """`out_dir/pairs.jsonl` with every pair field, including the changed character spans of `chosen`
    and `rejected` (`[[start, end], ...]`) that DDPO turns into token weights."""
    return _write_jsonl(
        rows=(as_pair_row(r) for r in rows),
        out_dir=out_dir,
        file_name="pairs.jsonl",
        format_name="dense-jsonl",
        snapshot_hash=snapshot_hash,
        image_root=image_root,
        to_record=lambda pair, images: dense_record(pair, images.copy(pair.image)),
        source_of=lambda pair: pair.source,
    )


def write_reward_jsonl(
    *, rows: Iterable[PairRow | Mapping[str, Any]], out_dir: Path, snapshot_hash: str, image_root: Path | None = None
) -> dict[str, Any]:
    """`out_dir/reward.jsonl`: `{"prompt", "chosen", "rejected", "margin"[, "images"]}`; a pair without
    a margin gets 0.0 (no margin term in TRL's reward loss)."""

    def to_record(pair: PairRow, images: ImageCopier) -> dict[str, Any]:
        record = {
            "prompt": pair.prompt,
            "chosen": pair.chosen,
            "rejected": pair.rejected,
            "margin": float(pair.margin) if pair.margin is not None else 0.0,
        }
        if pair.image:
            record["images"] = [images.copy(pair.image)]
        return record

    return _write_jsonl(
        rows=(as_pair_row(r) for r in rows),
        out_dir=out_dir,
        file_name="reward.jsonl",
        format_name="reward-jsonl",
        snapshot_hash=snapshot_hash,
        image_root=image_root,
        to_record=to_record,
        source_of=lambda pair: pair.source,
    )


def as_sft_row(row: SFTRow | Mapping[str, Any]) -> SFTRow:
    return row if isinstance(row, SFTRow) else SFTRow(**dict(row))


def write_sft_jsonl(
    *,
    rows: Iterable[SFTRow | Mapping[str, Any]],
    out_dir: Path,
    snapshot_hash: str,
    image_root: Path | None = None,
    conversational: bool = False,
) -> dict[str, Any]:
    """`out_dir/sft.jsonl`: `{"prompt", "completion"[, "images"]}` per line (prompt-completion form)."""

    def to_record(row: SFTRow, images: ImageCopier) -> dict[str, Any]:
        has_image = bool(row.image)
        if conversational:
            record: dict[str, Any] = {
                "prompt": user_message(row.prompt, has_image=has_image),
                "completion": assistant_message(row.completion, has_image=has_image),
            }
        else:
            record = {"prompt": row.prompt, "completion": row.completion}
        if has_image:
            record["images"] = [images.copy(row.image)]
        return record

    return _write_jsonl(
        rows=(as_sft_row(r) for r in rows),
        out_dir=out_dir,
        file_name="sft.jsonl",
        format_name="sft-jsonl",
        snapshot_hash=snapshot_hash,
        image_root=image_root,
        to_record=to_record,
        source_of=lambda row: row.label or "sft",
    )


# ---------------------------------------------------------------------------------------------------
# Parquet


def message_feature(datasets: Any, *, typed_parts: bool) -> Any:
    content = (
        datasets.List({"type": datasets.Value("string"), "text": datasets.Value("string")})
        if typed_parts
        else datasets.Value("string")
    )
    return datasets.List({"role": datasets.Value("string"), "content": content})


def trl_features(*, conversational: bool, typed_parts: bool, with_images: bool = True) -> Any:
    """The `datasets.Features` of a TRL preference export (imported here: `datasets` is heavy).

    Without `with_images` there is no `images` column: TRL's trainers take any `images` column, even
    of empty lists, for a vision-language dataset and refuse a text-only model."""
    import datasets

    text = message_feature(datasets, typed_parts=typed_parts) if conversational else datasets.Value("string")
    columns = {"prompt": text, "chosen": text, "rejected": text}
    if with_images:
        columns["images"] = datasets.List(datasets.Image())
    return datasets.Features(columns)


def _padded_parts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Arrow structs need every key in every part: an image part gets `text: None`.
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [{"type": part["type"], "text": part.get("text")} for part in content]
        out.append({"role": message["role"], "content": content})
    return out


def peek(rows: Iterable[Any]) -> tuple[Any | None, Iterator[Any]]:
    """The first row and an iterator over all rows (the first included)."""
    iterator = iter(rows)
    sentinel = object()
    first = next(iterator, sentinel)
    if first is sentinel:
        return None, iter(())
    return first, itertools.chain([first], iterator)


def write_trl_parquet(
    *,
    rows: Iterable[PairRow | Mapping[str, Any]],
    out_dir: Path,
    snapshot_hash: str,
    image_root: Path | None = None,
    conversational: bool | None = None,
    with_images: bool | None = None,
    batch_rows: int = PARQUET_BATCH_ROWS,
) -> dict[str, Any]:
    """`out_dir/pairs.parquet` with `prompt`, `chosen`, `rejected` and `images` (embedded bytes), written
    through `pyarrow.parquet.ParquetWriter` in batches of at most `batch_rows` rows (or 64 MiB).

    `with_images=False` leaves the `images` column out (for text-only data; a row with an image then
    raises `ValueError`). By default the export is conversational exactly when it has images, the form
    trl's vision collator trains on (`image_export_layout`); in conversational form with images every
    row's content is typed parts (Arrow needs one column type), the image part where the row has one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir = prepare_out_dir(out_dir)
    first, pairs = peek(as_pair_row(r) for r in rows)
    conversational, with_images = image_export_layout(first, conversational=conversational, with_images=with_images)
    features = trl_features(conversational=conversational, typed_parts=with_images, with_images=with_images)
    schema = features.arrow_schema
    images = ImageCopier(out_dir, image_root=image_root)
    sources: Counter = Counter()
    seen_images: set[str] = set()
    count = 0
    batch: list[dict[str, Any]] = []
    batch_bytes = 0
    with pq.ParquetWriter(out_dir / "pairs.parquet", schema) as writer:

        def flush() -> None:
            nonlocal batch, batch_bytes
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            batch, batch_bytes = [], 0

        for pair in pairs:
            if pair.image and not with_images:
                raise ValueError(f"item {pair.item_key!r} has an image, but this export has no images column")
            record = trl_texts(pair, conversational=conversational, typed_parts=with_images)
            if conversational:
                record = {key: _padded_parts(value) for key, value in record.items()}
            if with_images:
                record["images"] = []
            if pair.image:
                data = images.read(pair.image)
                record["images"] = [{"bytes": data, "path": Path(pair.image).name}]
                batch_bytes += len(data)
                seen_images.add(pair.image)
            batch.append(record)
            sources[pair.source] += 1
            count += 1
            if len(batch) >= batch_rows or batch_bytes >= PARQUET_BATCH_BYTES:
                flush()
        flush()
    return write_manifest(
        out_dir,
        format_name="trl-parquet",
        snapshot_hash=snapshot_hash,
        counts=_pair_counts(sources, count, len(seen_images)),
        files=["pairs.parquet"],
        extra={"conversational": conversational},
    )


# ---------------------------------------------------------------------------------------------------
# Reading pair exports back


def _spans(value: Any, *, line: int, field: str) -> list[tuple[int, int]]:
    check_type(value, list, line=line, field=field)
    spans = []
    for span in value:
        if (
            not isinstance(span, list)
            or len(span) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in span)
            or not 0 <= span[0] <= span[1]
        ):
            raise FormatError("each span must be [start, end] with 0 <= start <= end", line=line, field=field)
        spans.append((span[0], span[1]))
    return spans


def read_pair_rows_jsonl(path: Path) -> Iterator[PairRow]:
    """Pairs from a `trl-jsonl` (standard form) or `dense-jsonl` export, validated line by line.

    `image` is the first entry of `images` as written (relative to the export directory).
    """
    for line, record in iter_jsonl(Path(path)):
        if not isinstance(record, dict):
            raise FormatError("each line must be a JSON object", line=line)
        texts = {key: require(record, key, str, line=line) for key in ("prompt", "chosen", "rejected")}
        images = optional(record, "images", list, [], line=line)
        for image in images:
            check_type(image, str, line=line, field="images")
        yield PairRow(
            item_key=str(optional(record, "item_key", (str, int), "", line=line)),
            prompt=texts["prompt"],
            image=images[0] if images else None,
            chosen=texts["chosen"],
            rejected=texts["rejected"],
            source=optional(record, "source", str, "", line=line),
            margin=optional(record, "margin", float, None, line=line),
            agreement=optional(record, "agreement", float, None, line=line),
            n_votes=optional(record, "n_votes", int, 1, line=line),
            chosen_spans=_spans(record.get("chosen_spans") or [], line=line, field="chosen_spans"),
            rejected_spans=_spans(record.get("rejected_spans") or [], line=line, field="rejected_spans"),
            meta=optional(record, "meta", dict, {}, line=line),
        )
