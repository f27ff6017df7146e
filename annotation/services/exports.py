"""Exports of snapshots in the formats trainers and other tools read (writers in `annotation.formats`).

Every export streams the snapshot's rows from its file into the format's writer, so memory does not grow
with the number of rows, and writes `manifest.json` (snapshot hash, counts, format version, and the
snapshot's `stats` as `snapshot_stats`) beside the data. `EXPORT_FORMATS` says which snapshot kinds each
format takes and which options it has:

- pairs snapshots: trl-jsonl, trl-parquet, hf-dataset (TRL's `prompt, chosen, rejected, images`,
  optionally conversational), dense-jsonl (with changed spans), rlaif-v, rlhf-v, reward-jsonl,
  sft-jsonl (the chosen answers as completions), label-studio-json (pairwise tasks, or correction tasks
  when every pair is a correction);
- sft snapshots: sft-jsonl, scicap (`metadata.jsonl` + images);
- ratings snapshots: caption-contest-csv (one ranked table per item + its image), label-studio-json
  (rating tasks carrying the aggregate counts).

Options: `split` (`all`, `train` or `test`) for every format; `conversational` (bool) for the TRL
formats and SFT rows; `images_once` (bool) for hf-dataset (each distinct image stored once).

An export is written into a hidden folder beside its destination (`.<name>.partial-<id>`) and renamed
to the destination only once whole, so a failed export leaves nothing and a killed one no folder under
the name asked for. The destination may be absent, empty, or a previous export (it has `manifest.json`),
which is replaced whole; any other folder is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from annotation.formats.common import (
    CorrectionRecord,
    FormatError,
    ItemRecord,
    PairwiseRecord,
    ResponseRecord,
    manifest_extend,
)
from annotation.models import DatasetSnapshot
from annotation.pair_rules import (
    HUMOR_SCALE,
    RATING_SUMMARY_KEY,
    RatingAggregate,
    SFTRow,
    diff_segments,
    given_summary_fields,
)
from annotation.selectors import snapshot_rows
from annotation.services.snapshots import snapshot_kind
from loupe.errors import ApplicationError

SPLITS = ("all", "train", "test")
# Export options that are switches: `conversational` (message lists, TRL and SFT formats) and `images_once`
# (hf-dataset: each distinct image stored once, small on disk but loaded into memory).
BOOLEAN_EXPORT_OPTIONS = ("conversational", "images_once")
# Called with (rows written, rows in all) while an export writes; may raise to stop it.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExportFormat:
    name: str
    title: str
    kinds: tuple[str, ...]
    options: tuple[str, ...] = ()


EXPORT_FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("trl-jsonl", "TRL preference JSONL (prompt, chosen, rejected)", ("pairs",), ("conversational",)),
        ExportFormat("trl-parquet", "TRL preference Parquet, images embedded", ("pairs",), ("conversational",)),
        ExportFormat(
            "hf-dataset", "Hugging Face datasets directory (save_to_disk)", ("pairs",),
            ("conversational", "images_once"),
        ),
        ExportFormat("dense-jsonl", "Dense pairs with changed spans (DDPO)", ("pairs",)),
        ExportFormat("rlaif-v", "RLAIF-V release Parquet, images embedded", ("pairs",)),
        ExportFormat("rlhf-v", "RLHF-V release Parquet, images embedded", ("pairs",)),
        ExportFormat("reward-jsonl", "Reward-model rows (chosen, rejected, margin)", ("pairs",)),
        ExportFormat("sft-jsonl", "SFT rows (prompt, completion)", ("sft", "pairs"), ("conversational",)),
        ExportFormat("scicap", "SciCap metadata.jsonl ([GOOD]/[BAD]) + images", ("sft",)),
        ExportFormat("caption-contest-csv", "Caption-contest tables (counts, mean, precision, rank)", ("ratings",)),
        ExportFormat("label-studio-json", "Label Studio tasks with annotations", ("pairs", "ratings")),
    )
}  # fmt: skip


def export_options_check(*, snapshot: DatasetSnapshot, export_format: str, options: dict[str, Any] | None) -> dict:
    """The options, checked against the format and the snapshot's kind (ApplicationError naming the field)."""
    spec = EXPORT_FORMATS.get(export_format)
    if spec is None:
        raise ApplicationError(
            f"Unknown export format {export_format!r}; choose one of {', '.join(EXPORT_FORMATS)}.",
            {"field": "format"},
        )
    kind = snapshot_kind(snapshot)
    if kind not in spec.kinds:
        raise ApplicationError(
            f"{export_format} is written from {' or '.join(spec.kinds)} snapshots; "
            f"snapshot {snapshot.pk} holds {kind}.",
            {"field": "format"},
        )
    options = dict(options or {})
    unknown = sorted(set(options) - {"split", *spec.options})
    if unknown:
        raise ApplicationError(f"{export_format} has no option {', '.join(unknown)}.", {"field": unknown[0]})
    split = options.get("split") or "all"
    if split not in SPLITS:
        raise ApplicationError(f"split must be one of {', '.join(SPLITS)}.", {"field": "split"})
    options["split"] = split
    for flag in BOOLEAN_EXPORT_OPTIONS:
        if flag in options:
            value = options[flag]
            if isinstance(value, str):
                value = value.lower() in ("1", "true", "yes", "on")
            options[flag] = bool(value)
    return options


def _counted(rows: Iterable[dict], *, total: int, progress: Progress | None, every: int = 2000) -> Iterator[dict]:
    done = 0
    for row in rows:
        yield row
        done += 1
        if progress is not None and done % every == 0:
            progress(done, total)
    if progress is not None:
        progress(done, total)


def _pair_dicts(rows: Iterable[dict]) -> Iterator[dict]:
    for row in rows:
        # An imported release's own fields (snapshot rows carry them) go with the pair for rlhf-v/rlaif-v.
        row["meta"] = {"split": row.pop("split")}
        if "provenance" in row:
            row["meta"]["provenance"] = row.pop("provenance")
        row["image"] = row["image"] or None
        yield row


def _sft_rows(rows: Iterable[dict], *, kind: str) -> Iterator[SFTRow]:
    for row in rows:
        if kind == "pairs":
            yield SFTRow(
                item_key=row["item_key"],
                prompt=row["prompt"],
                image=row["image"] or None,
                completion=row["chosen"],
                label="chosen",
                n_votes=row["n_votes"],
            )
        else:
            yield SFTRow(
                item_key=row["item_key"],
                prompt=row["prompt"],
                image=row["image"] or None,
                completion=row["completion"],
                label=row["label"],
                score=row["score"],
                n_votes=row["n_votes"],
            )


def _aggregates(rows: Iterable[dict], *, humor_scale: bool) -> Iterator[RatingAggregate]:
    for row in rows:
        scale = tuple(row["scale"])
        counts = row["counts"]
        if humor_scale and scale != HUMOR_SCALE:
            if len(scale) != len(HUMOR_SCALE):
                raise ApplicationError(
                    f"Caption-contest tables have three levels {HUMOR_SCALE}; this project rates on {list(scale)}.",
                    {"field": "format"},
                )
            # The project names the humor levels its own way ("somewhat funny"): worst first, by position.
            counts = {HUMOR_SCALE[scale.index(level)]: n for level, n in counts.items()}
            scale = HUMOR_SCALE
        yield RatingAggregate(
            item_key=row["item_key"],
            prompt=row["prompt"],
            image=row["image"] or None,
            text=row["text"],
            counts=counts,
            scale=scale,
            response_key=row["response_key"],
            meta=row.get("meta") or {},
            # A caption imported without level counts: its mean, precision and votes as its file gave them.
            **given_summary_fields((row.get("meta") or {}).get(RATING_SUMMARY_KEY)),
        )


def _grouped(rows: Iterable[dict]) -> Iterator[list[dict]]:
    """Consecutive rows of one item (snapshots are ordered by item), one item in memory at a time."""
    group: list[dict] = []
    for row in rows:
        if group and row["item_key"] != group[0]["item_key"]:
            yield group
            group = []
        group.append(row)
    if group:
        yield group


def _response_of(record: ItemRecord, index: dict[str, int], text: str, counts: dict | None = None) -> int:
    """The position of the response with `text` in `record`, added on first sight."""
    if text not in index:
        index[text] = len(record.responses)
        record.responses.append(ResponseRecord(text=text, rating_counts=counts))
    return index[text]


def _label_studio_items(rows: Iterable[dict], *, kind: str, as_corrections: bool) -> Iterator[ItemRecord]:
    for group in _grouped(rows):
        first = group[0]
        record = ItemRecord(external_id=first["item_key"], prompt=first["prompt"], image=first["image"] or None)
        index: dict[str, int] = {}
        for row in group:
            if kind == "ratings":
                _response_of(record, index, row["text"], dict(row["counts"]))
            elif as_corrections:
                original = _response_of(record, index, row["rejected"])
                segments = [
                    (s, e, text, "hallucination") for s, e, text, _ in diff_segments(row["rejected"], row["chosen"])
                ]
                record.corrections.append(
                    CorrectionRecord(response=original, corrected_text=row["chosen"], segments=segments)
                )
            else:
                chosen = _response_of(record, index, row["chosen"])
                rejected = _response_of(record, index, row["rejected"])
                record.pairwise.append(
                    PairwiseRecord(response_a=chosen, response_b=rejected, choice="a", annotator=row["source"])
                )
        yield record


def _label_studio_kind(snapshot: DatasetSnapshot, kind: str) -> str:
    if kind == "ratings":
        return "rating"
    # One labeling config per export: correction tasks only when every pair is a correction.
    sources = {row["source"] for row in snapshot_rows(snapshot=snapshot)}
    return "correction" if sources == {"correction"} else "pairwise"


def snapshot_export(
    *,
    snapshot: DatasetSnapshot,
    export_format: str,
    out: Path,
    options: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write the snapshot in `export_format` into the folder `out` (data files, images, manifest.json)."""
    from annotation.formats import FORMAT_WRITERS

    options = export_options_check(snapshot=snapshot, export_format=export_format, options=options)
    split = options.pop("split")
    kind = snapshot_kind(snapshot)
    total = {"all": snapshot.n_rows, "train": snapshot.n_train, "test": snapshot.n_test}[split]
    raw = _counted(
        snapshot_rows(snapshot=snapshot, split=None if split == "all" else split), total=total, progress=progress
    )
    extra: dict[str, Any] = {}
    if export_format in ("sft-jsonl", "scicap"):
        rows: Iterable[Any] = _sft_rows(raw, kind=kind)
    elif export_format == "caption-contest-csv":
        rows = _aggregates(raw, humor_scale=True)
    elif export_format == "label-studio-json":
        ls_kind = _label_studio_kind(snapshot, kind)
        rows = _label_studio_items(raw, kind=kind, as_corrections=ls_kind == "correction")
        extra["kind"] = ls_kind
        if kind == "ratings":
            first = next(iter(snapshot_rows(snapshot=snapshot)), None)
            extra["scale"] = tuple(first["scale"]) if first else HUMOR_SCALE
    else:
        rows = _pair_dicts(raw)
        if export_format in ("trl-parquet", "hf-dataset"):
            # One column layout for all rows: with images if any row has one (a streaming look first).
            extra["with_images"] = any(row["image"] for row in snapshot_rows(snapshot=snapshot))
    out = _export_destination(Path(out))
    partial = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:12]}"
    try:
        FORMAT_WRITERS[export_format](
            rows=rows,
            out_dir=partial,
            snapshot_hash=snapshot.content_hash,
            image_root=Path(settings.MEDIA_ROOT),
            **options,
            **extra,
        )
        if snapshot.stats:
            # What freezing found (pairs and distinct answers per source, the [GOOD] threshold) travels with
            # the data, so a trainer reading the folder sees it without the database.
            manifest_extend(partial, {"snapshot_stats": snapshot.stats})
        _move_into_place(partial, out)
    except FormatError as error:  # rows the format cannot hold (e.g. rlhf-v/rlaif-v pairs without an image)
        shutil.rmtree(partial, ignore_errors=True)
        raise ApplicationError(f"{export_format}: {error}", {"field": "format"}) from error
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


def _export_destination(out: Path) -> Path:
    """`out`, checked to be a place an export may go (module docstring), its parent made."""
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / "manifest.json").is_file())):
        raise ApplicationError(
            f"{out} exists and is not an earlier export (no manifest.json); export into a new or empty folder.",
            {"field": "out"},
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _move_into_place(partial: Path, out: Path) -> None:
    """Rename the finished export to `out`; an earlier export there is renamed away first, then removed."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:12]}"
        out.rename(old)
    partial.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_archive_path(*, snapshot: DatasetSnapshot, export_format: str, options: dict[str, Any]) -> Path:
    """Where the zip of this (snapshot, format, options) export lives once made."""
    tag = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
    return Path(settings.EXPORTS_DIR) / f"{snapshot.content_hash[:16]}-{export_format}-{tag}.zip"


def snapshot_export_archive(
    *,
    snapshot: DatasetSnapshot,
    export_format: str,
    options: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> Path:
    """A zip of the export, made once per (snapshot, format, options): snapshots are immutable, so it never
    goes stale."""
    options = export_options_check(snapshot=snapshot, export_format=export_format, options=options)
    archive = export_archive_path(snapshot=snapshot, export_format=export_format, options=options)
    if archive.exists():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    # A killed export leaves only this hidden folder beside the archives, never a partial zip under its name.
    with tempfile.TemporaryDirectory(dir=archive.parent, prefix=".partial-") as tmp:
        folder = snapshot_export(
            snapshot=snapshot, export_format=export_format, out=Path(tmp) / "export", options=options, progress=progress
        )
        partial = Path(tmp) / "export.zip"
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for file in sorted(folder.rglob("*")):
                if file.is_file():
                    bundle.write(file, file.relative_to(folder))
        shutil.move(partial, archive)
    return archive
