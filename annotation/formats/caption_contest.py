"""New Yorker caption-contest tables: per caption the counts of unfunny / somewhat funny / funny votes, or
where a table has no per-level counts, the caption's mean, its precision (standard error) and vote count.

The contest archive (nextml/caption-contest-data, `contests/summaries/` and `_raw-dashboards/`, ~450
tables) has nine header variants; the reader goes by header name, folding case, spaces and dashes, so
all of them read:

- `target_id,rank,funny,somewhat_funny,unfunny,count,score,precision,contest,caption` and four other
  orders of those columns, some after an unnamed index column (ignored, as is any other column);
- `,rank,caption,score,precision,count,unfunny,somewhat_funny,funny` with counts written as floats ("12.0");
- `Unfunny,Somewhat funny,Funny,Caption` (capitalised, no index), whose captions are not quoted: a row
  with more fields than the header is a caption with commas, rejoined, when the caption is the last
  column (anywhere else the extra fields are an error);
- `,Unfunny,Somewhat funny,Funny,Caption,Score,Precision`;
- `,target_id,mean,precision,count,score,caption,contest`: no per-level counts, and both `mean` and
  `score` (the same number in every real row; a row where they differ is refused).

Required are `caption` and, per row, either the three level counts or `mean` (or `score`), `precision`
and `count`: a row whose level cells are blank is read from those, as a summary given without counts
(`RatingAggregate.given_mean` and friends, kept in the response's metadata under `RATING_SUMMARY_KEY`).
Caption pairs need only each caption's mean and standard error (the margin test), so such captions pair
like counted ones; see `RatingAggregate`.

Rows that cannot be captions are skipped and listed in `ContestReadNotes.skipped` with their line: an
empty caption (62 rows of the archive: the placeholder row `0,0,0,` of contests 520 and 521, but
also captions with votes, 80 in contest 691, 249 in 642), a caption without votes, a mean off the 1–3
scale (306 rows of the dashboards of contests 589–600, means from 0.89 to 4.6). With `strict=True` the
first of them fails the read instead. Where a row's own `score` or `count`
disagrees with its level counts (several dashboards, by up to 0.1 in score or a few votes), both are
kept: the counts as `rating_counts`, the file's numbers in the response's metadata (`score`, `count`);
the row's line is listed in `ContestReadNotes.disagreeing`.

One file is one cartoon: the reader yields one `ItemRecord` whose responses are the captions. The writer
writes one such table per item (ranked by mean), with the image.
"""

from __future__ import annotations

import csv
import io
import math
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotation.formats.common import FormatError, ItemRecord, ResponseRecord, prepare_out_dir, write_manifest
from annotation.pair_rules import HUMOR_SCALE, RATING_SUMMARY_KEY, RatingAggregate

DEFAULT_PROMPT = "Write a funny caption for this cartoon."
COUNT_COLUMNS = ("funny", "somewhat_funny", "unfunny")
SUMMARY_COLUMNS = ("precision", "count")
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
_ALIASES = {"somewhatfunny": "somewhat_funny", "not_funny": "unfunny"}
# Columns that must not appear twice (two `funny` columns could not both be the caption's count).
_SINGLE_COLUMNS = ("caption", *COUNT_COLUMNS, "count", "mean", "score", "precision", "rank", "contest", "target_id")
# Why a row cannot be a caption (`SkippedRow.reason`).
SKIP_EMPTY_CAPTION = "empty caption"
SKIP_NO_VOTES = "no votes"
SKIP_OFF_SCALE = f"mean off the scale 1–{len(HUMOR_SCALE)}"
# A file's score and the mean of its counts differ by float rounding (~1e-16) when they agree.
_SAME_SCORE = 1e-9


@dataclass(frozen=True)
class SkippedRow:
    """A row that cannot be a caption, left out of a lenient read: its line, the column at fault and why."""

    line: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


@dataclass
class ContestReadNotes:
    """What a read left out (`skipped`) and the lines of rows whose own score or count disagrees with
    their level counts (`disagreeing`; both kept). Filled by `read_caption_contest_csv` when given."""

    skipped: list[SkippedRow] = field(default_factory=list)
    disagreeing: list[int] = field(default_factory=list)


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
    if math.isinf(value):
        raise FormatError(f"must be a finite number, not {text.strip()[:40]!r}", line=line, field=field)
    return value


def _table_rows(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the rows (each with the physical line it starts on, the header being line 1).

    A table is read as strict CSV (a quote inside an unquoted field, or text after a closing quote, is an
    error rather than guessed at). The dashboards' raw `Unfunny,Somewhat funny,Funny,Caption` exports are
    not CSV: one caption per line, written as typed, quotes and commas included (`9,0,0,"Just Chillin"!`,
    `7,0,0,"...Then use this` with no closing quote). A table that fails strict CSV and has its caption
    last is read that way: each line split at its first commas, the rest of the line being the caption,
    which gives the captions of the archive's cleaned-up copies of the same contests. Any other table
    that fails is refused at the line where the CSV broke.
    """
    rows: list[tuple[int, list[str]]] = []
    with io.StringIO(text, newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise FormatError("the file is empty; expected a header row", line=1) from None
        except csv.Error as error:
            raise FormatError(f"unreadable CSV header: {error}", line=1) from None
        previous_end = reader.line_num
        try:
            for row in reader:
                rows.append((previous_end + 1, row))
                previous_end = reader.line_num
        except csv.Error as error:
            if _normalize_header(header[-1]) != "caption":
                raise FormatError(f"unreadable CSV: {error}", line=previous_end + 1) from None
            return header, _line_rows(text, len(header))
    return header, rows


def _line_rows(text: str, n_fields: int) -> list[tuple[int, list[str]]]:
    """Rows of a table written one caption per line, the caption last and unquoted (see `_table_rows`)."""
    lines = text.split("\n")
    return [
        (number, line.removesuffix("\r").split(",", n_fields - 1)) for number, line in enumerate(lines[1:], start=2)
    ]


def _columns_of(header: list[str]) -> dict[str, int]:
    """Normalized column name → index; `FormatError` for a column named twice or one the table needs."""
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        key = _normalize_header(name)
        if key in columns and key in _SINGLE_COLUMNS:
            raise FormatError("the column appears twice", line=1, field=key)
        columns.setdefault(key, index)
    if "caption" not in columns:
        raise FormatError("missing column", line=1, field="caption")
    has_counts = [name for name in COUNT_COLUMNS if name in columns]
    if has_counts and len(has_counts) < len(COUNT_COLUMNS):
        missing = next(name for name in COUNT_COLUMNS if name not in columns)
        raise FormatError("missing column", line=1, field=missing)
    if not has_counts:
        for name in ("mean", *SUMMARY_COLUMNS):
            if name not in columns and not (name == "mean" and "score" in columns):
                raise FormatError(
                    "missing column: a table needs the level counts (funny, somewhat_funny, unfunny) or, "
                    "without them, mean (or score), precision and count",
                    line=1,
                    field=name,
                )
    return columns


def read_caption_contest_csv(
    path: Path,
    *,
    image: Path | None = None,
    external_id: str | None = None,
    prompt: str = DEFAULT_PROMPT,
    strict: bool = False,
    notes: ContestReadNotes | None = None,
) -> Iterator[ItemRecord]:
    """The cartoon of one contest table as one `ItemRecord`, its captions as responses.

    Every row is checked before the record is yielded; a bad row raises `FormatError` with its line
    (the physical line where the row starts, the header being line 1) and column. Rows that cannot be
    captions are skipped (and listed in `notes`), or with `strict` fail the read (see the module).
    `image` is the cartoon; `external_id` defaults to the `contest` column, else the file name.
    """
    path = Path(path)
    notes = notes if notes is not None else ContestReadNotes()
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
    header, rows = _table_rows(text)
    columns = _columns_of(header)
    responses: list[ResponseRecord] = []
    contest: str | None = None
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            raise FormatError(f"{len(row)} fields but the header has {len(header)}", line=line)
        response = _response(row, columns, line=line, strict=strict, notes=notes)
        if response is None:
            continue
        row_contest = (
            row[columns["contest"]] if "contest" in columns and columns["contest"] < len(row) else ""
        ).strip()
        if row_contest:
            if contest is not None and row_contest != contest:
                raise FormatError(
                    f"is {row_contest!r}, but earlier rows are contest {contest!r}; one file is one cartoon",
                    line=line,
                    field="contest",
                )
            contest = row_contest
        responses.append(response)
    yield ItemRecord(
        external_id=external_id or contest or path.stem,
        prompt=prompt,
        image=str(image) if image is not None else None,
        image_bytes=image_bytes,
        responses=responses,
        meta={"contest": contest} if contest else {},
        line=1,
    )


def _response(
    row: list[str], columns: dict[str, int], *, line: int, strict: bool, notes: ContestReadNotes
) -> ResponseRecord | None:
    """The caption of one row, or None for a row that cannot be one (recorded in `notes`)."""

    def cell(name: str) -> str | None:
        index = columns.get(name)
        return row[index] if index is not None and index < len(row) else None

    def skip(field: str, reason: str) -> None:
        if strict:
            raise FormatError(f"{reason} (without --strict the row would be skipped)", line=line, field=field)
        notes.skipped.append(SkippedRow(line=line, field=field, reason=reason))

    caption = cell("caption") or ""
    meta: dict[str, Any] = {}
    rank = _optional_number(cell("rank"), line=line, field="rank")
    if rank is not None:
        meta["rank"] = int(rank) if rank == int(rank) else rank
    target_id = (cell("target_id") or "").strip()
    if target_id:
        meta["target_id"] = target_id
    score = _file_mean(cell, line=line)
    precision = _optional_number(cell("precision"), line=line, field="precision")
    # Blank level cells read as a summary where the table has one (Loupe writes mixed tables that way).
    summary_columns = ("mean" in columns or "score" in columns) and all(name in columns for name in SUMMARY_COLUMNS)
    levels_given = "funny" in columns and (
        not summary_columns or any((cell(name) or "").strip() for name in COUNT_COLUMNS)
    )
    if levels_given:
        counts = {name: _whole_count(cell(name), line=line, field=name) for name in COUNT_COLUMNS}
        votes = sum(counts.values())
        count = _whole_count(cell("count"), line=line, field="count") if "count" in columns else votes
    else:
        counts = None
        count = _whole_count(cell("count"), line=line, field="count") if "count" in columns else 0
    if not caption.strip():
        skip("caption", SKIP_EMPTY_CAPTION)
        return None
    if (count if counts is None else sum(counts.values())) == 0:
        skip("count" if "count" in columns else "funny", SKIP_NO_VOTES)
        return None
    if counts is None:
        # No level counts: the caption's mean, precision and votes as the file gives them.
        for name, value in (("score" if "mean" not in columns else "mean", score), ("precision", precision)):
            if value is None:
                raise FormatError(
                    "missing (a row without level counts needs mean, precision and count)", line=line, field=name
                )
        if not 1 <= score <= len(HUMOR_SCALE):  # type: ignore[operator]
            skip("mean", SKIP_OFF_SCALE)
            return None
        if not 0 <= precision < math.inf:  # type: ignore[operator]
            raise FormatError(f"must be a standard error (0 or more), not {precision!r}", line=line, field="precision")
        meta[RATING_SUMMARY_KEY] = {"mean": score, "precision": precision, "votes": count}
        return ResponseRecord(text=caption, rating_counts=None, meta=meta)
    votes = sum(counts.values())
    mean = sum((k + 1) * counts[level] for k, level in enumerate(HUMOR_SCALE)) / votes if votes else math.nan
    if score is not None:
        meta["score"] = score
    if precision is not None:
        meta["precision"] = precision
    if count != votes:
        meta["count"] = count
    if count != votes or (score is not None and votes and abs(score - mean) > _SAME_SCORE):
        notes.disagreeing.append(line)
    return ResponseRecord(text=caption, rating_counts={level: counts[level] for level in HUMOR_SCALE}, meta=meta)


def _file_mean(cell: Any, *, line: int) -> float | None:
    """The row's own mean: `mean` or `score`, which must agree where a table has both."""
    mean = _optional_number(cell("mean"), line=line, field="mean")
    score = _optional_number(cell("score"), line=line, field="score")
    if mean is not None and score is not None and abs(mean - score) > _SAME_SCORE:
        raise FormatError(
            f"is {score!r}, but the row's mean is {mean!r}; which is the caption's?", line=line, field="score"
        )
    return mean if mean is not None else score


def _file_stem(item_key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", item_key).strip("._") or "item"


def _format_float(value: float) -> str:
    return "" if not math.isfinite(value) else repr(value)


def caption_contest_row(aggregate: RatingAggregate, *, rank: int, contest: str) -> list[Any]:
    """One caption's row of a table, in `WRITTEN_COLUMNS` order (see `write_caption_contest_csv`)."""
    counted = bool(aggregate.counts) or not aggregate.given_votes
    levels = [aggregate.counts.get(level, 0) if counted else "" for level in COUNT_COLUMNS]
    return [
        rank,
        aggregate.text,
        *levels,
        aggregate.votes,
        _format_float(aggregate.mean),
        _format_float(aggregate.precision),
        aggregate.meta.get("target_id", ""),
        contest,
    ]


def write_caption_contest_csv(
    *, rows: Iterable[RatingAggregate], out_dir: Path, snapshot_hash: str, image_root: Path | None = None
) -> dict[str, Any]:
    """One table per item, `out_dir/<item>.csv`, ranked by mean score, with the cartoon as
    `out_dir/<item>.<ext>` when the item has a local image.

    Columns: rank, caption, funny, somewhat_funny, unfunny, count, score (the mean), precision (its
    standard error), target_id, contest. `target_id` is the caption's id in the contest it came from
    (`meta["target_id"]`), blank for a caption that has none: a position written there would be read
    back as the contest's id. A caption known only by a summary (mean, precision, votes; no level
    counts) has blank level cells, which the reader takes as such a summary. Rows must come grouped by
    item (a snapshot is ordered that way); one item's captions are held in memory to rank them.
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
                writer.writerow(caption_contest_row(aggregate, rank=rank, contest=item_key))
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
