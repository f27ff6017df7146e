"""New Yorker caption-contest tables: per caption the counts of unfunny / somewhat funny / funny votes.

The real exports (nextml/caption-contest-data-api) order their columns differently from contest to
contest, and other copies add index columns or write counts as floats ("12.0"), so the reader goes by
header name: `caption`, `funny`, `somewhat_funny`, `unfunny` are required; `count`, `score` (or
`mean`), `precision`, `rank`, `target_id`, `contest` are read when present; other columns are ignored.
One file is one cartoon: the reader yields one `ItemRecord` whose responses are the captions with
their `rating_counts`. The writer writes one such table per item (ranked by mean), with the image.
"""

from __future__ import annotations

import csv
import io
import math
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from annotation.formats.common import FormatError, ItemRecord, ResponseRecord, prepare_out_dir, write_manifest
from annotation.pair_rules import HUMOR_SCALE, RatingAggregate

DEFAULT_PROMPT = "Write a funny caption for this cartoon."
COUNT_COLUMNS = ("funny", "somewhat_funny", "unfunny")
REQUIRED_COLUMNS = ("caption", *COUNT_COLUMNS)
WRITTEN_COLUMNS = (
    "rank",
    "caption",
    "funny",
    "somewhat_funny",
    "unfunny",
    "count",
    "score",
    "precision",
    "target_id",
    "contest",
)
_ALIASES = {"mean": "score", "somewhatfunny": "somewhat_funny", "not_funny": "unfunny"}


def _normalize_header(name: str) -> str:
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return _ALIASES.get(key, key)


def _whole_count(text: str | None, *, line: int, field: str) -> int:
    if text is None or text.strip() == "":
        raise FormatError("missing", line=line, field=field)
    try:
        value = float(text)
    except ValueError:
        raise FormatError(f"must be a number, not {text.strip()!r}", line=line, field=field) from None
    if not math.isfinite(value) or value != int(value):
        raise FormatError(f"must be a whole number of votes, not {text.strip()!r}", line=line, field=field)
    if value < 0:
        raise FormatError(f"must not be negative, not {text.strip()!r}", line=line, field=field)
    return int(value)


def _optional_number(text: str | None, *, line: int, field: str) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise FormatError(f"must be a number, not {text.strip()!r}", line=line, field=field) from None
    if math.isnan(value):
        return None
    return value


def read_caption_contest_csv(
    path: Path,
    *,
    image: Path | None = None,
    external_id: str | None = None,
    prompt: str = DEFAULT_PROMPT,
) -> Iterator[ItemRecord]:
    """The cartoon of one contest table as one `ItemRecord`, its captions as responses.

    Every row is checked before the record is yielded; a bad row raises `FormatError` with its line
    (the physical line where the row starts, the header being line 1) and column. `image` is the
    cartoon; `external_id` defaults to the `contest` column, else the file name.
    """
    path = Path(path)
    image_bytes = None
    if image is not None:
        if not Path(image).is_file():
            raise FormatError(f"cartoon image not found: {image}", field="image")
        image_bytes = Path(image).read_bytes()
    # One table is one cartoon's captions (thousands of rows at most) and the record holds them all
    # anyway, so the file is decoded whole: a bad byte can then be traced to its exact line.
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise FormatError("not UTF-8 text", line=raw.count(b"\n", 0, error.start) + 1) from None
    with io.StringIO(text, newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise FormatError("the file is empty; expected a header row", line=1) from None
        except csv.Error as error:
            raise FormatError(f"unreadable CSV header: {error}", line=1) from None
        columns: dict[str, int] = {}
        for index, name in enumerate(header):
            key = _normalize_header(name)
            if key in columns and key in (*REQUIRED_COLUMNS, "count", "score", "precision", "rank", "contest"):
                raise FormatError("the column appears twice", line=1, field=key)
            columns.setdefault(key, index)
        for required in REQUIRED_COLUMNS:
            if required not in columns:
                raise FormatError("missing column", line=1, field=required)

        responses: list[ResponseRecord] = []
        contest: str | None = None
        previous_end = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                raise FormatError(f"unreadable CSV: {error}", line=previous_end + 1) from None
            line = previous_end + 1
            previous_end = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                raise FormatError(f"{len(row)} fields but the header has {len(header)}", line=line)

            def cell(name: str, row: list[str] = row) -> str | None:
                index = columns.get(name)
                return row[index] if index is not None and index < len(row) else None

            caption = cell("caption")
            if caption is None or not caption.strip():
                raise FormatError("missing", line=line, field="caption")
            counts = {name: _whole_count(cell(name), line=line, field=name) for name in COUNT_COLUMNS}
            total = sum(counts.values())
            if "count" in columns:
                count = _whole_count(cell("count"), line=line, field="count")
                if count != total:
                    raise FormatError(
                        f"is {count}, but funny + somewhat_funny + unfunny = {total}", line=line, field="count"
                    )
            meta: dict[str, Any] = {}
            for name in ("score", "precision", "rank"):
                value = _optional_number(cell(name), line=line, field=name)
                if value is not None:
                    meta[name] = int(value) if name == "rank" and value == int(value) else value
            target_id = (cell("target_id") or "").strip()
            if target_id:
                meta["target_id"] = target_id
            row_contest = (cell("contest") or "").strip()
            if row_contest:
                if contest is not None and row_contest != contest:
                    raise FormatError(
                        f"is {row_contest!r}, but earlier rows are contest {contest!r}; one file is one cartoon",
                        line=line,
                        field="contest",
                    )
                contest = row_contest
            responses.append(
                ResponseRecord(text=caption, rating_counts={level: counts[level] for level in HUMOR_SCALE}, meta=meta)
            )
    yield ItemRecord(
        external_id=external_id or contest or path.stem,
        prompt=prompt,
        image=str(image) if image is not None else None,
        image_bytes=image_bytes,
        responses=responses,
        meta={"contest": contest} if contest else {},
        line=1,
    )


def _file_stem(item_key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", item_key).strip("._") or "item"


def _format_float(value: float) -> str:
    return "" if not math.isfinite(value) else repr(value)


def write_caption_contest_csv(
    *, rows: Iterable[RatingAggregate], out_dir: Path, snapshot_hash: str, image_root: Path | None = None
) -> dict[str, Any]:
    """One table per item, `out_dir/<item>.csv`, ranked by mean score, with the cartoon as
    `out_dir/<item>.<ext>` when the item has a local image.

    Columns: rank, caption, funny, somewhat_funny, unfunny, count, score (the mean), precision (its
    standard error), target_id, contest. Rows must come grouped by item (a snapshot is ordered that
    way); one item's captions are held in memory to rank them.
    """
    out_dir = prepare_out_dir(out_dir)
    files: list[str] = []
    contests: list[dict[str, Any]] = []
    done: set[str] = set()
    captions = 0

    def flush(group: list[RatingAggregate]) -> None:
        nonlocal captions
        item_key = group[0].item_key
        stem = _file_stem(item_key)
        ranked = sorted(group, key=lambda a: (-(a.mean if a.votes else -math.inf), a.text))
        with open(out_dir / f"{stem}.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(WRITTEN_COLUMNS)
            for rank, aggregate in enumerate(ranked, start=1):
                writer.writerow(
                    [
                        rank,
                        aggregate.text,
                        aggregate.counts.get("funny", 0),
                        aggregate.counts.get("somewhat_funny", 0),
                        aggregate.counts.get("unfunny", 0),
                        aggregate.votes,
                        _format_float(aggregate.mean),
                        _format_float(aggregate.precision),
                        aggregate.response_key,
                        item_key,
                    ]
                )
        files.append(f"{stem}.csv")
        entry: dict[str, Any] = {"item_key": item_key, "csv": f"{stem}.csv", "captions": len(group), "image": None}
        image = group[0].image
        if image and not image.startswith(("http://", "https://")):
            source = Path(image) if Path(image).is_absolute() or image_root is None else Path(image_root) / image
            if not source.is_file():
                raise FileNotFoundError(f"cartoon image {image!r} not found at {source}")
            shutil.copyfile(source, out_dir / f"{stem}{source.suffix.lower()}")
            files.append(f"{stem}{source.suffix.lower()}")
            entry["image"] = f"{stem}{source.suffix.lower()}"
        contests.append(entry)
        captions += len(group)

    group: list[RatingAggregate] = []
    for aggregate in rows:
        if tuple(aggregate.scale) != HUMOR_SCALE:
            raise ValueError(f"caption-contest tables use the scale {HUMOR_SCALE}, not {aggregate.scale}")
        if group and aggregate.item_key != group[0].item_key:
            done.add(group[0].item_key)
            flush(group)
            group = []
        if aggregate.item_key in done:
            raise ValueError(f"rows of item {aggregate.item_key!r} are not grouped together")
        group.append(aggregate)
    if group:
        flush(group)
    return write_manifest(
        out_dir,
        format_name="caption-contest-csv",
        snapshot_hash=snapshot_hash,
        counts={"items": len(contests), "captions": captions},
        files=files,
        extra={"contests": contests},
    )
