"""Imports of items with their images, responses and annotations, from every format family Loupe reads
(`annotation.formats.FORMAT_READERS`): all or nothing, naming the line and field at fault.

An import makes two streaming passes over the file. The first reads and checks every record — its
fields (the format's reader), its annotations against the project (response indexes, rating levels,
segments), whether it fits the project's kind (`FORMAT_PROJECT_KINDS`, `record_fits_project`) and its
image — and puts nothing in place (images wait in a staging folder, below). Only a file that passes
whole is stored, in one transaction, in batches (`rows_insert`: many rows per INSERT). Items whose
external id the project already has are left as they are, annotations included, so importing the same
file again changes nothing; but an existing id whose prompt, image, metadata or responses (texts,
models, metadata, rating counts) differ from the file's is refused, naming the id, rather than reported
"unchanged" (annotations a file carries for an existing item are not compared: they are never stored
twice).

Images are written into a staging folder (`MEDIA_ROOT/.incoming/<import>/`) as they are checked and moved
into place (content-addressed, `items/ab/<sha256>.<ext>`) as the last step of the import's transaction,
only for items the import creates: an image already in place, or one of an item that already exists, is
never written again. A failed import removes its staging folder and anything it moved; a killed one
leaves only its staging folder, which the next import removes once it is a day old. (Moving after the
commit, in `transaction.on_commit`, would leave committed items without their images if the process died
in between, and never runs under an outer transaction such as a test's.)

A caption-contest table is one item whose id is its `contest` column, else the contest number its file
name starts with (the archive's dashboards are `<contest>_summary_<algorithm>.csv`, so a table with and
one without the column agree), else the file's name (`caption_contest_key`): uploads keep their file name
for this.

Annotations in a file (RLHF-V corrections, RLAIF-V preferences, Label Studio results, ratings) are
stored as annotations by inactive users named `import:<annotator>` (`import:anonymous` where the file
names nobody), so they count like any other annotator's and snapshots can filter on them. Aggregate
rating counts (caption-contest tables) are kept on the response, `Response.meta["rating_counts"]`, keyed
by the project's level names; a table without level counts keeps each caption's mean, precision and votes
in `Response.meta["rating_summary"]` (`pair_rules.RATING_SUMMARY_KEY`). The imported items' preference
pairs are derived right after.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import http.client
import json
import re
import urllib.error
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.assignment import MAX_REASON_CHARS
from annotation.formats import FORMAT_READERS
from annotation.formats.caption_contest import ContestReadNotes
from annotation.formats.common import FormatError, ItemRecord, is_parquet, json_text
from annotation.images import CheckedImage, ImageRejected, ImageSource, ImageStaging, image_check, url_fetch_checked
from annotation.models import (
    DEFAULT_HALLUCINATION_TYPES,
    Correction,
    Item,
    PairwiseJudgment,
    Project,
    ProjectKind,
    Ranking,
    Rating,
    Response,
)
from annotation.pair_rules import HUMOR_SCALE, PAIRWISE_CHOICES, RATING_SUMMARY_KEY, segments_check
from annotation.services.gold import gold_answers_set, gold_entries_of_record
from annotation.services.preference_pairs import preference_pairs_rebuild, rating_scale
from annotation.services.queue import queue_units_sync
from loupe.errors import ApplicationError
from loupe.jsonchecks import json_text_problem, json_value_problem

IMPORT_FORMATS = tuple(FORMAT_READERS)
# The project kinds each format's items can be tasks of (formats not named fit any kind, item by item:
# `record_fits_project`). A caption contest is rated; RLAIF-V is two answers with a preference; RLHF-V is
# one answer with its correction.
FORMAT_PROJECT_KINDS = {
    "caption-contest": (ProjectKind.RATING,),
    "rlaif-v": (ProjectKind.PAIRWISE,),
    "rlhf-v": (ProjectKind.CORRECTION,),
}
# Project kinds whose tasks compare the responses of an item, so need two or more.
_COMPARING_KINDS = (ProjectKind.PAIRWISE, ProjectKind.RANKING)
# The staging folder of a killed import is removed by a later one once it is this old (seconds).
STAGING_MAX_AGE = 24 * 3600
IMPORTED_ANNOTATOR_PREFIX = "import"
# Rows per INSERT statement in `rows_insert`, within the database's limit on parameters.
_ROWS_PER_STATEMENT = 100
# Called with (records done, records in all) while an import stores; may raise to stop it (nothing is kept).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImportReport:
    """What an import did. `self_pairs_dropped` counts the pairs the imported feedback would have made
    between two copies of one answer (the same text up to whitespace, `pair_rules.same_answer`): an
    RLHF-V or RLAIF-V record whose chosen answer is its rejected one, a judgment or ranking of two equal
    responses. None of them is stored. `skipped_rows` are the rows a lenient caption-contest import left
    out because they cannot be captions (`{"line", "field", "reason"}`: empty caption, no votes, a mean
    off the scale); `disagreeing_rows` counts the captions whose own score or count disagrees with their
    level counts (both kept: the counts for pairs, the file's numbers in the response's metadata)."""

    created: int
    unchanged: int
    annotations: int = 0
    pairs: int = 0
    self_pairs_dropped: int = 0
    # What the import let through but the user should know (e.g. a caption contest without its cartoon).
    warnings: tuple[str, ...] = ()
    skipped_rows: tuple[dict[str, Any], ...] = ()
    disagreeing_rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "unchanged": self.unchanged,
            "annotations": self.annotations,
            "pairs": self.pairs,
            "self_pairs_dropped": self.self_pairs_dropped,
            "warnings": list(self.warnings),
            "skipped_rows": list(self.skipped_rows),
            "disagreeing_rows": self.disagreeing_rows,
        }


def _import_error(error: FormatError | ImageRejected, *, line: int, field: str = "image") -> ApplicationError:
    if isinstance(error, FormatError):
        return ApplicationError(str(error), {"line": error.line, "field": error.field})
    return ApplicationError(f"line {line}, field {field!r}: {error}", {"line": line, "field": field})


class _ImageLoader:
    """Resolves an item's image (bytes embedded in the file, a relative path, or a URL) to checked bytes."""

    def __init__(self, *, base: Path) -> None:
        try:
            self.source = ImageSource(base)
        except _ARCHIVE_ERRORS as error:
            raise ImageRejected(f"the image archive cannot be read ({_reason(error)})") from error

    def load(self, record: ItemRecord) -> CheckedImage:
        limits = {"max_bytes": settings.LOUPE_MAX_IMAGE_BYTES, "max_pixels": settings.LOUPE_MAX_IMAGE_PIXELS}
        if record.image_bytes is not None:
            return image_check(record.image_bytes, **limits, name=record.image or "embedded image")
        reference = record.image or ""
        if reference.startswith(("http://", "https://")):
            try:
                data = url_fetch_checked(
                    reference,
                    max_bytes=settings.LOUPE_MAX_IMAGE_BYTES,
                    allow_private=settings.LOUPE_ALLOW_PRIVATE_URLS,
                    total_seconds=settings.LOUPE_IMAGE_FETCH_SECONDS,
                )
            except ImageRejected:
                raise
            # A malformed URL (bad port, bad IPv6 literal: ValueError), an HTTP error status, a host that
            # does not route or answer, a broken response: the user's data, so a 400 naming the image.
            except (ValueError, OSError, http.client.HTTPException) as error:
                raise ImageRejected(f"image URL {reference[:200]} cannot be fetched ({_reason(error)})") from error
        else:
            try:
                data = self.source.read(reference, max_bytes=settings.LOUPE_MAX_IMAGE_BYTES)
            except ImageRejected:
                raise
            except _ARCHIVE_ERRORS as error:  # a corrupt member, an encrypted archive, an unknown compression
                raise ImageRejected(
                    f"image {reference[:200]} cannot be read from the archive ({_reason(error)})"
                ) from error
        return image_check(data, **limits, name=reference)


# What reading a damaged, encrypted or unsupported zip archive raises (zipfile: BadZipFile, RuntimeError
# "File is encrypted", NotImplementedError for a compression method, zlib.error, EOFError, OSError).
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError, OSError, ValueError)


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)[:200]
    return (str(error) or type(error).__name__)[:200]


def _normal_level(name: str) -> str:
    return re.sub(r"[\s_\-]+", "_", name.strip().lower())


class LevelMap:
    """Level names of a file (e.g. `somewhat_funny`) → index in the project's scale (`somewhat funny`).

    Names match after folding case, spaces, dashes and underscores; a file whose scale has as many levels
    as the project's but other names maps by position (worst first), as the caption-contest scale does.
    """

    def __init__(self, scale: tuple[str, ...]) -> None:
        self.scale = scale
        self._by_name = {_normal_level(level): index for index, level in enumerate(scale)}

    def index(self, level: str, *, file_scale: tuple[str, ...] | None = None) -> int | None:
        found = self._by_name.get(_normal_level(level))
        if found is None and file_scale is not None and len(file_scale) == len(self.scale) and level in file_scale:
            found = file_scale.index(level)
        return found


def _records(path: Path, *, import_format: str, options: dict[str, Any]) -> Iterator[ItemRecord]:
    """The file's records, raising ApplicationError naming the line and field of the first bad one."""
    reader = FORMAT_READERS[import_format]
    try:
        yield from reader(path, **options)
    except FormatError as error:
        raise _import_error(error, line=error.line or 0) from error


# What a file's values must fit: the columns they go to, and what a database can store (`_text_check`).
EXTERNAL_ID_MAX_LENGTH = Item._meta.get_field("external_id").max_length
MODEL_NAME_MAX_LENGTH = Response._meta.get_field("model_name").max_length
IMAGE_REFERENCE_MAX_LENGTH = 4096
MAX_STRENGTH = 2  # 1 slightly, 2 clearly better (PairwiseJudgment.strength)
MAX_RATING_COUNT = 10**9
# The type readers give segments their source leaves untyped (e.g. RLHF-V's diffs): accepted in any project.
UNTYPED_SEGMENT = "hallucination"


def _text_check(value: str, *, line: int, field: str, max_length: int | None = None) -> None:
    problem = json_text_problem(value)
    if problem:
        raise FormatError(problem, line=line, field=field)
    if max_length is not None and len(value) > max_length:
        raise FormatError(f"is {len(value)} characters long; at most {max_length} fit", line=line, field=field)


def _json_check(value: Any, *, line: int, field: str) -> None:
    problem = json_value_problem(value)
    if problem:
        raise FormatError(problem.replace("$", field, 1), line=line, field=field)


def record_values_check(record: ItemRecord) -> None:
    """Every text of the record storable (no NUL, no lone surrogate) and within its column, every metadata
    value finite and not too deep, every count a sane whole number (FormatError naming the field)."""
    line = record.line
    _text_check(record.external_id, line=line, field="external_id", max_length=EXTERNAL_ID_MAX_LENGTH)
    _text_check(record.prompt, line=line, field="prompt")
    if record.image:
        _text_check(record.image, line=line, field="image", max_length=IMAGE_REFERENCE_MAX_LENGTH)
    if record.meta:
        _json_check(record.meta, line=line, field="meta")
    for index, response in enumerate(record.responses):
        where = f"responses[{index}]"
        _text_check(response.text, line=line, field=f"{where}.text")
        _text_check(response.model, line=line, field=f"{where}.model", max_length=MODEL_NAME_MAX_LENGTH)
        if response.meta:
            _json_check(response.meta, line=line, field=f"{where}.meta")
        for level, count in (response.rating_counts or {}).items():
            _text_check(str(level), line=line, field=f"{where}.rating_counts")
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_RATING_COUNT:
                raise FormatError(
                    f"count of {str(level)[:40]!r} must be a whole number from 0 to {MAX_RATING_COUNT}, "
                    f"not {count!r:.40}",
                    line=line,
                    field=f"{where}.rating_counts",
                )
    annotations = (
        [(f"pairwise[{i}]", a) for i, a in enumerate(record.pairwise)]
        + [(f"corrections[{i}]", a) for i, a in enumerate(record.corrections)]
        + [(f"ratings[{i}]", a) for i, a in enumerate(record.ratings)]
        + [(f"rankings[{i}]", a) for i, a in enumerate(record.rankings)]
    )
    for where, annotation in annotations:
        _text_check(annotation.annotator, line=line, field=f"{where}.annotator")
        _text_check(annotation.source_id, line=line, field=f"{where}.source_id")
    for index, judgment in enumerate(record.pairwise):
        _text_check(judgment.reason, line=line, field=f"pairwise[{index}].reason", max_length=MAX_REASON_CHARS)
    for index, correction in enumerate(record.corrections):
        _text_check(correction.corrected_text, line=line, field=f"corrections[{index}].corrected_text")
        for number, segment in enumerate(correction.segments):
            for part in segment[2:]:
                if isinstance(part, str):
                    _text_check(part, line=line, field=f"corrections[{index}].segments[{number}]")
    for index, rating in enumerate(record.ratings):
        _text_check(str(rating.level), line=line, field=f"ratings[{index}].level")


def segment_types(project: Project) -> list[str]:
    """The correction types a file's segments may have in `project`: its list (correction projects), else the
    default list (a project of another kind keeps imported corrections too, with Loupe's usual types)."""
    return list(project.hallucination_types or DEFAULT_HALLUCINATION_TYPES)


def record_check(record: ItemRecord, *, levels: LevelMap, types: Sequence[str] | None = None) -> None:
    """Check the record's values (`record_values_check`) and its annotations against its responses, the
    project's scale and (when given) its hallucination types (FormatError)."""
    record_values_check(record)
    if not (record.pairwise or record.corrections or record.ratings or record.rankings) and all(
        response.rating_counts is None for response in record.responses
    ):
        return
    line, n = record.line, len(record.responses)

    def response_index(value: int, field: str) -> None:
        if not (isinstance(value, int) and 0 <= value < n):
            raise FormatError(f"refers to response {value}, but the item has {n}", line=line, field=field)

    for index, judgment in enumerate(record.pairwise):
        where = f"pairwise[{index}]"
        response_index(judgment.response_a, f"{where}.response_a")
        response_index(judgment.response_b, f"{where}.response_b")
        if judgment.response_a == judgment.response_b:
            raise FormatError("compares a response with itself", line=line, field=where)
        if judgment.choice not in PAIRWISE_CHOICES:
            raise FormatError(f"choice must be one of {PAIRWISE_CHOICES}", line=line, field=f"{where}.choice")
        strength = judgment.strength
        if isinstance(strength, bool) or not isinstance(strength, int | float) or not 1 <= strength <= MAX_STRENGTH:
            raise FormatError(
                f"strength must be from 1 (slightly better) to {MAX_STRENGTH} (clearly better), not {strength!r:.40}",
                line=line,
                field=f"{where}.strength",
            )
    for index, correction in enumerate(record.corrections):
        where = f"corrections[{index}]"
        response_index(correction.response, f"{where}.response")
        try:
            segments_check(record.responses[correction.response].text, correction.segments)
        except ValueError as error:
            raise FormatError(str(error), line=line, field=f"{where}.segments") from None
        if types is not None:
            allowed = {*types, UNTYPED_SEGMENT}
            for number, segment in enumerate(correction.segments):
                if segment[3] not in allowed:
                    raise FormatError(
                        f"type {str(segment[3])[:40]!r} is not one of the project's hallucination types "
                        f"({', '.join(types)})",
                        line=line,
                        field=f"{where}.segments[{number}].type",
                    )
    for index, rating in enumerate(record.ratings):
        response_index(rating.response, f"ratings[{index}].response")
        if levels.index(rating.level) is None:
            raise FormatError(
                f"level {rating.level!r} is not on the project's scale {list(levels.scale)}",
                line=line,
                field=f"ratings[{index}].level",
            )
    for index, ranking in enumerate(record.rankings):
        for position in ranking.order:
            response_index(position, f"rankings[{index}].order")
        if len(set(ranking.order)) != len(ranking.order):
            raise FormatError("names a response twice", line=line, field=f"rankings[{index}].order")
        if len(ranking.order) != n:
            raise FormatError(
                f"orders {len(ranking.order)} of the item's {n} responses; a ranking orders every one of them",
                line=line,
                field=f"rankings[{index}].order",
            )
    for index, response in enumerate(record.responses):
        if response.rating_counts is None:
            continue
        file_scale = tuple(response.rating_counts)
        for level in response.rating_counts:
            if levels.index(level, file_scale=_file_scale_of(file_scale)) is None:
                raise FormatError(
                    f"level {level!r} is not on the project's scale {list(levels.scale)}",
                    line=line,
                    field=f"responses[{index}].rating_counts",
                )


def record_fits_project(record: ItemRecord, *, kind: str) -> None:
    """Refuse (FormatError) an item that could not be a task of a `kind` project: pairwise and ranking
    tasks compare two or more responses, so a single answer would fail on every submit."""
    if kind in _COMPARING_KINDS and len(record.responses) < 2:
        raise FormatError(
            f"has {len(record.responses)} response(s), but the tasks of a {kind} project compare two or more; "
            "import it into a rating or correction project",
            line=record.line,
            field="responses",
        )


def import_format_check(*, project: Project, import_format: str) -> None:
    """Refuse, before reading the file, a format unknown or whose items cannot be tasks of the project's
    kind (`FORMAT_PROJECT_KINDS`); the message names the kind the format needs."""
    if import_format not in FORMAT_READERS:
        raise ApplicationError(
            f"Unknown import format {import_format!r}; choose one of {', '.join(IMPORT_FORMATS)}.",
            {"field": "format"},
        )
    kinds = FORMAT_PROJECT_KINDS.get(import_format)
    if kinds is not None and project.kind not in kinds:
        needs = " or ".join(str(kind) for kind in kinds)
        raise ApplicationError(
            f"{import_format} files import into {needs} projects; {project.slug!r} is a {project.kind} project.",
            {
                "field": "format",
                "format": import_format,
                "project_kind": project.kind,
                "needs": [str(k) for k in kinds],
            },
        )


def caption_contest_key(file_name: str) -> str:
    """The item id of a caption-contest table without a `contest` column, from its file name: the contest
    number the name starts with (`660_summary_KLUCB.csv` → `660`, as the column would say), else the
    name's stem with anything but letters, digits, `.`, `_` and `-` made `_`."""
    stem = Path(file_name).stem
    number = re.match(r"(\d+)(?:[^A-Za-z0-9]|$)", stem)
    if number:
        return number.group(1)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-") or "contest"


def _contest_keyed(records: Iterator[ItemRecord], *, key: str) -> Iterator[ItemRecord]:
    # The reader names a table by its `contest` column (kept in meta) or the file's stem, which for an
    # upload or a job is a name Loupe gave the file; the name the user gave decides instead.
    for record in records:
        if not record.meta.get("contest"):
            record.external_id = key
        yield record


def _file_scale_of(levels_in_file: tuple[str, ...]) -> tuple[str, ...] | None:
    # The caption-contest reader writes its counts on the humor scale, worst first.
    return HUMOR_SCALE if set(levels_in_file) <= set(HUMOR_SCALE) else None


def _reader_options(import_format: str, *, project: Project, image: Path | None) -> dict[str, Any]:
    if import_format == "caption-contest":
        return {"image": image}
    if import_format == "label-studio":
        return {"scale": rating_scale(project)}
    if image is not None:
        raise ApplicationError("Only caption-contest imports take a separate image (the cartoon).", {"field": "image"})
    # Ids seen twice are caught by the store against the database, so memory does not grow with the file.
    return {"unique_ids": False}


def _records_expected(path: Path, import_format: str) -> int:
    """How many records the file holds, counted cheaply where the format allows (0: not known)."""
    if import_format == "caption-contest":
        return 1
    if import_format in ("rlaif-v", "rlhf-v") and is_parquet(path):  # rlhf-v may also be JSON
        try:
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        except Exception:  # noqa: BLE001 - a broken file is reported by the reader, with its row
            return 0
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip()
        if head.startswith(b"["):
            return 0
        handle.seek(0)
        return sum(1 for line in handle if line.strip())


def items_import(
    *,
    project: Project,
    path: Path,
    images: Path | None = None,
    import_format: str = "loupe-jsonl",
    image: Path | None = None,
    file_name: str | None = None,
    strict: bool = False,
    batch_size: int = 5000,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a file of `import_format` into `project`; all or nothing.

    `images` is the folder or zip archive that relative image paths resolve in (default: the file's
    folder); `image` is a caption contest's cartoon; `file_name` the name the user gave the file (default:
    `path`'s), which names a caption-contest table without a `contest` column. Records are read, checked
    (fields, annotations, fit to the project's kind, images) and stored in batches inside one transaction:
    the first bad record rolls everything back, images included, and names its line and field. A
    caption-contest table's rows that cannot be captions are skipped and listed in the report
    (`skipped_rows`), or with `strict` fail the import; every other format is always strict.
    """
    import_format_check(project=project, import_format=import_format)
    options = _reader_options(import_format, project=project, image=image)
    contest_notes = ContestReadNotes()
    if import_format == "caption-contest":
        options.update(strict=strict, notes=contest_notes)
    levels = LevelMap(rating_scale(project))
    records = _records(path, import_format=import_format, options=options)
    warnings: list[str] = []
    hint = "Give the item another id, or delete the stored one first."
    if import_format == "caption-contest":
        records = _contest_keyed(records, key=caption_contest_key(file_name or path.name))
        hint = (
            "A caption-contest table is named by its contest column, else by the number its file name starts "
            "with, else by its file name: rename the file to import it as another item."
        )
        if image is None:
            warnings.append(
                "The caption-contest table came without its cartoon (image): its item has no image, so "
                "annotators rate the captions without it and exports carry none."
            )
    try:
        loader = _ImageLoader(base=images if images is not None else path.parent)
    except ImageRejected as error:
        raise ApplicationError(str(error), {"field": "images"}) from error
    media_root = Path(settings.MEDIA_ROOT)
    ImageStaging.sweep(media_root, max_age=STAGING_MAX_AGE)
    staging = ImageStaging(media_root)
    try:
        total = _records_expected(path, import_format)
        if progress is not None:
            progress(0, total)
        report = _items_store(
            project=project,
            records=_checked(records, loader, levels, staging, kind=project.kind, types=segment_types(project)),
            levels=levels,
            staging=staging,
            existing_hint=hint,
            batch_size=batch_size,
            progress=progress,
            total=total,
        )
    except BaseException:
        staging.discard(failed=True)
        raise
    finally:
        loader.source.close()
    staging.discard(failed=False)
    if contest_notes.disagreeing:
        warnings.append(
            f"Captions whose own score or count disagrees with their level counts: {len(contest_notes.disagreeing)} "
            f"(first on line {contest_notes.disagreeing[0]}); both are kept: the counts give the pairs, the "
            "file's score and count stay in each caption's metadata."
        )
    return replace(
        report,
        warnings=tuple(warnings),
        skipped_rows=tuple(row.as_dict() for row in contest_notes.skipped),
        disagreeing_rows=len(contest_notes.disagreeing),
    )


@contextmanager
def _collector_paused() -> Iterator[Callable[[], None]]:
    """Pause Python's automatic cyclic garbage collection while an import stores; yields `between_batches`,
    which collects the young generations once a batch has been let go.

    A batch holds tens of thousands of small containers (records, their responses, rows) that live long
    enough to be promoted, so the automatic collector kept re-scanning them with everything Django has
    loaded: a quarter of a 100k-item import went there. Collecting between batches instead, when the
    batch is already freed, costs little and still frees any cycle a reader or image check makes.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield lambda: gc.collect(1)
    finally:
        if was_enabled:
            gc.enable()


def _checked(
    records: Iterator[ItemRecord],
    loader: _ImageLoader,
    levels: LevelMap,
    staging: ImageStaging,
    *,
    kind: str,
    types: Sequence[str],
) -> Iterator[tuple[ItemRecord, str]]:
    """Each record checked against the project, with its image checked and staged (its storage name).

    Images are staged as they come so a batch never holds their bytes; only those of the items the
    import creates are moved into place, when it stores them.
    """
    for record in records:
        try:
            record_check(record, levels=levels, types=types)
            record_fits_project(record, kind=kind)
        except FormatError as error:
            raise _import_error(error, line=record.line) from error
        name = ""
        if record.image or record.image_bytes is not None:
            try:
                name = staging.stage(loader.load(record))
            except ImageRejected as error:
                raise _import_error(error, line=record.line) from error
            record.image_bytes = None
        yield record, name


def _items_store(
    *,
    project: Project,
    records: Iterator[tuple[ItemRecord, str]],
    levels: LevelMap,
    staging: ImageStaging,
    existing_hint: str,
    batch_size: int,
    progress: Progress | None,
    total: int,
) -> ImportReport:
    totals = {"created": 0, "unchanged": 0, "annotations": 0, "pairs": 0, "self_pairs_dropped": 0}
    users = ImportedAnnotators()
    new_images: set[str] = set()
    with transaction.atomic(), _collector_paused() as between_batches:
        project_was_empty = not Item.objects.filter(project=project).exists()
        # Items above this id were made by this import: finding one again means the file names it twice.
        first_new_pk = (Item.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        batch: list[tuple[ItemRecord, str]] = []
        done = 0

        def store(batch: list[tuple[ItemRecord, str]]) -> None:
            _add(
                totals,
                _items_store_batch(
                    project,
                    batch,
                    levels,
                    users,
                    project_was_empty=project_was_empty,
                    first_new_pk=first_new_pk,
                    new_images=new_images,
                    existing_hint=existing_hint,
                ),
            )

        for entry in records:
            batch.append(entry)
            if len(batch) >= batch_size:
                store(batch)
                done, batch = done + len(batch), []
                between_batches()
                staging.touch()
                if progress is not None:
                    progress(done, max(total, done))
        if batch:
            store(batch)
            done += len(batch)
        if totals["annotations"]:
            # Imported annotations fill the queue's slots like submitted ones (done and taken counts).
            queue_units_sync(project=project)
        if progress is not None:
            progress(done, done)
        # Last, so that the images come into place with the rows that point to them (module docstring).
        staging.publish(new_images)
    return ImportReport(**totals)


def _add(totals: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        totals[key] += value


class ImportedAnnotators:
    """Inactive users standing for the annotators a file names (`import:<name>`), made once each.

    Loupe keeps one annotation per person and task (an item for pairwise judgments and rankings, a
    response for corrections and ratings); a file where one person annotated a task twice (e.g. two Label
    Studio tasks comparing different answers of one item) gets the second under `import:<name>~2`.
    """

    def __init__(self, prefix: str = IMPORTED_ANNOTATOR_PREFIX) -> None:
        self.prefix = prefix
        self._users: dict[str, AbstractBaseUser] = {}

    def user(self, name: str, *, taken: set[tuple], task: tuple) -> AbstractBaseUser:
        """The user for `name` who has no annotation of `task` in `taken` yet (which then records it)."""
        base = f"{self.prefix}:{name.strip() or 'anonymous'}"[:140]
        candidate, copy = base, 1
        while True:
            user = self._get(candidate)
            if (task, user.pk) not in taken:
                taken.add((task, user.pk))
                return user
            copy += 1
            candidate = f"{base}~{copy}"

    def _get(self, username: str) -> AbstractBaseUser:
        if username not in self._users:
            model = get_user_model()
            user = model.objects.filter(username=username).first()
            if user is None:
                user = model(username=username, is_active=False)
                user.set_unusable_password()
                user.save()
            self._users[username] = user
        return self._users[username]


def import_request_id(*parts: object) -> str:
    """A stable client request id for an imported annotation (the field holds 64 characters)."""
    return "imp-" + hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:40]


def rows_insert(model: type, attnames: Sequence[str], rows: Iterable[tuple]) -> None:
    """Insert rows of database-ready values for the fields `attnames` (JSON already encoded), in the
    order given; every other field gets its default, `auto_now(_add)` dates the current time.

    Several times faster than `bulk_create` for the many small rows of a large import: no model instance
    is built, no value goes through a field's conversion one by one, and each statement carries many rows
    (`INSERT … VALUES (…), (…), …` run with `executemany`): on SQLite a statement per row costs three
    times as much as the rows themselves. On PostgreSQL the rows go in with COPY instead (`_rows_copy`).
    """
    connection = transaction.get_connection()
    given = list(attnames)
    others = [f for f in model._meta.concrete_fields if not f.primary_key and f.attname not in given]
    now = timezone.now()
    tail = []
    for field in others:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            tail.append(field.get_db_prep_save(now, connection))
        elif field.has_default() or field.null:
            tail.append(field.get_db_prep_save(field.get_default(), connection))
        else:
            raise ValueError(f"{model.__name__}.{field.name} has no default; give it")
    fields = {f.attname: f for f in model._meta.concrete_fields}
    columns = [connection.ops.quote_name(fields[name].column) for name in given] + [
        connection.ops.quote_name(f.column) for f in others
    ]
    end = tuple(tail)
    complete = [row + end for row in rows]
    if not complete:
        return
    if connection.vendor == "postgresql":
        _rows_copy(connection, model._meta.db_table, columns, [fields[name] for name in given] + others, complete)
        return
    per_statement = max(1, min(_ROWS_PER_STATEMENT, (connection.features.max_query_params or 65535) // len(columns)))
    table = connection.ops.quote_name(model._meta.db_table)
    one_row = f"({', '.join(['%s'] * len(columns))})"

    def statement(n_rows: int) -> str:
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one_row] * n_rows)}"  # noqa: S608 - names come from the model, values are parameters

    whole = len(complete) - len(complete) % per_statement
    with connection.cursor() as cursor:
        if whole:
            cursor.executemany(
                statement(per_statement),
                [tuple(chain.from_iterable(complete[i : i + per_statement])) for i in range(0, whole, per_statement)],
            )
        if whole < len(complete):
            cursor.execute(statement(len(complete) - whole), tuple(chain.from_iterable(complete[whole:])))


# Column types binary COPY sends as psycopg dumps them (`db_type` up to its first parenthesis); a table with
# any other type goes in as text COPY.
_BINARY_COPY_TYPES = frozenset(
    {"bigint", "integer", "smallint", "boolean", "text", "varchar", "jsonb", "timestamp with time zone",
     "double precision", "date", "uuid"}
)  # fmt: skip


def _rows_copy(connection: Any, table: str, columns: list[str], fields: list[Any], rows: list[tuple]) -> None:
    """PostgreSQL: the rows in with one `COPY … FROM STDIN` (psycopg 3), several times faster than INSERTs
    (bench/scale.py). It runs in the caller's transaction, so a failed import still keeps nothing; a unique
    violation arrives as Django's IntegrityError, as an INSERT's would.

    In PostgreSQL's binary format where every column's type allows (a third faster than text for the items
    of an import, and half the client's CPU): no value is printed as text and parsed back by the server.
    JSON columns take the JSON text the callers encoded (or the default's `Jsonb`) as `jsonb`'s binary form."""
    types = [(field.db_type(connection) or "").split("(")[0].strip() for field in fields]
    binary = all(kind in _BINARY_COPY_TYPES for kind in types)
    statement = f"COPY {connection.ops.quote_name(table)} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw = cursor.cursor
        if binary:
            statement += " (FORMAT BINARY)"
            raw.adapters.register_dumper(_EncodedJson, _encoded_json_binary_dumper())
        with raw.copy(statement) as copy:
            if binary:
                copy.set_types(types)
            for row in rows:
                copy.write_row(row)


class _EncodedJson(str):
    """Only a key to register `_EncodedJsonBinaryDumper` under: binary COPY picks dumpers by column type."""


def _jsonb_binary(value: Any) -> bytes:
    if isinstance(value, str):  # already JSON text (`_json`)
        return b"\x01" + value.encode()
    dumps = getattr(value, "dumps", None) or json.dumps  # psycopg's Jsonb, as Django adapts a JSON default
    return b"\x01" + dumps(value.obj).encode()


@functools.cache
def _encoded_json_binary_dumper() -> type:
    from psycopg import postgres
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class EncodedJsonBinaryDumper(Dumper):
        """`jsonb`'s binary form (a version byte, then the text) of JSON text encoded by the caller."""

        format = Format.BINARY
        oid = postgres.types["jsonb"].oid

        def dump(self, obj: Any) -> bytes:
            return _jsonb_binary(obj)

    return EncodedJsonBinaryDumper


def _twice(record: ItemRecord) -> ApplicationError:
    return _import_error(
        FormatError(f"{record.external_id!r} appears twice in the file", line=record.line, field="external_id"),
        line=record.line,
    )


def _json(value: Any) -> str:
    # Most imported metadata is empty; skipping the encoder for it is measurable at 100k items.
    return "{}" if value == {} else json_text(value)


def _has_feedback(record: ItemRecord) -> bool:
    return bool(
        record.pairwise
        or record.corrections
        or record.ratings
        or record.rankings
        or any(r.rating_counts or RATING_SUMMARY_KEY in r.meta for r in record.responses)
    )


def _new_item_ids(project: Project, fresh: list[ItemRecord], last_id: int) -> dict[str, int]:
    """External id → id of the items just inserted (all ids above `last_id` in this project)."""
    connection = transaction.get_connection()
    if connection.vendor == "sqlite":
        # Under the transaction's write lock SQLite numbers the rows of one executemany consecutively;
        # a count over the range confirms it before the ids are trusted.
        with connection.cursor() as cursor:
            cursor.execute("SELECT last_insert_rowid()")
            (last,) = cursor.fetchone()
        first = last - len(fresh) + 1
        if first > last_id and Item.objects.filter(project=project, pk__gte=first, pk__lte=last).count() == len(fresh):
            return {record.external_id: first + index for index, record in enumerate(fresh)}
    wanted = {r.external_id for r in fresh}
    return {
        key: pk
        for key, pk in Item.objects.filter(project=project, pk__gt=last_id).values_list("external_id", "pk")
        if key in wanted
    }


def _items_store_batch(
    project: Project,
    batch: list[tuple[ItemRecord, str]],
    levels: LevelMap,
    users: ImportedAnnotators,
    *,
    project_was_empty: bool,
    first_new_pk: int,
    new_images: set[str],
    existing_hint: str,
) -> dict[str, int]:
    records = [record for record, _image in batch]
    keys = [r.external_id for r in records]
    seen: set[str] = set()
    for record in records:
        if record.external_id in seen:
            raise _twice(record)
        seen.add(record.external_id)
    existing: set[str] = set()
    if not project_was_empty:
        found = dict(Item.objects.filter(project=project, external_id__in=keys).values_list("external_id", "pk"))
        for record in records:
            if found.get(record.external_id, 0) >= first_new_pk:
                raise _twice(record)
        existing = set(found)
        if existing:
            _existing_check(
                [(r, image) for r, image in batch if r.external_id in existing], found, levels, hint=existing_hint
            )
    fresh_entries = [(r, image) for r, image in batch if r.external_id not in existing]
    fresh = [r for r, _image in fresh_entries]
    images = [image for _r, image in fresh_entries]
    new_images.update(image for image in images if image)
    if not fresh:
        return {"created": 0, "unchanged": len(records), "annotations": 0, "pairs": 0}
    last_id = Item.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    project_id = project.pk
    try:
        with transaction.atomic():
            rows_insert(
                Item,
                ("project_id", "external_id", "prompt", "meta", "image"),
                [
                    (project_id, r.external_id, r.prompt, _json(r.meta), image)
                    for r, image in zip(fresh, images, strict=True)
                ],
            )
    except IntegrityError:
        # Only possible for an id an earlier batch of this file already stored (see project_was_empty).
        again = set(Item.objects.filter(project=project, external_id__in=keys).values_list("external_id", flat=True))
        raise _twice(next(r for r in fresh if r.external_id in again)) from None
    ids = _new_item_ids(project, fresh, last_id)
    rows_insert(
        Response,
        ("item_id", "project_id", "position", "text", "model_name", "meta"),
        [
            (
                ids[record.external_id],
                project_id,
                position,
                response.text,
                response.model,
                _json(_response_meta(response.meta, response.rating_counts, levels)),
            )
            for record in fresh
            for position, response in enumerate(record.responses)
        ],
    )
    gold = [
        entry
        for r in fresh
        for entry in gold_entries_of_record(kind=project.kind, gold=r.gold, external_id=r.external_id, line=r.line)
    ]
    if gold:
        gold_answers_set(project=project, entries=gold)
    with_feedback = [r for r in fresh if _has_feedback(r)]
    if not with_feedback:
        return {"created": len(fresh), "unchanged": len(records) - len(fresh), "annotations": 0, "pairs": 0}
    items = {
        item.external_id: item
        for item in Item.objects.filter(pk__in=[ids[r.external_id] for r in with_feedback]).select_related("project")
    }
    stored: dict[int, list[Response]] = {}
    for response in Response.objects.filter(item_id__in=[item.pk for item in items.values()]).order_by("position"):
        stored.setdefault(response.item_id, []).append(response)
    annotated = [
        (items[r.external_id], r, stored.get(items[r.external_id].pk, []))
        for r in with_feedback
        if r.pairwise or r.corrections or r.ratings or r.rankings
    ]
    n_annotations = _annotations_store(project, annotated, levels, users) if annotated else 0
    rebuilt = preference_pairs_rebuild(items=[items[r.external_id] for r in with_feedback])
    return {
        "created": len(fresh),
        "unchanged": len(records) - len(fresh),
        "annotations": n_annotations,
        "pairs": rebuilt.created,
        "self_pairs_dropped": rebuilt.self_pairs_dropped,
    }


def _existing_check(
    entries: list[tuple[ItemRecord, str]], found: dict[str, int], levels: LevelMap, *, hint: str
) -> None:
    """Refuse (naming the id and line) a record whose id the project has with another prompt, image,
    metadata or responses: such a record is new content, which "unchanged" would silently drop."""
    pks = [found[record.external_id] for record, _image in entries]
    stored = {
        pk: (prompt, image, meta)
        for pk, prompt, image, meta in Item.objects.filter(pk__in=pks).values_list("pk", "prompt", "image", "meta")
    }
    answers: dict[int, list[tuple[str, str, Any]]] = {}
    for item_id, text, model, meta in (
        Response.objects.filter(item_id__in=pks)
        .order_by("item_id", "position")
        .values_list("item_id", "text", "model_name", "meta")
    ):
        answers.setdefault(item_id, []).append((text, model, meta))
    for record, image in entries:
        pk = found[record.external_id]
        prompt, stored_image, meta = stored[pk]
        given = [
            (r.text, r.model, _as_stored(_response_meta(r.meta, r.rating_counts, levels))) for r in record.responses
        ]
        differs = [
            name
            for name, same in (
                ("prompt", prompt == record.prompt),
                ("image", stored_image == image),
                ("metadata", meta == _as_stored(record.meta)),
                ("responses", answers.get(pk, []) == given),
            )
            if not same
        ]
        if differs:
            raise ApplicationError(
                f"line {record.line}: item {record.external_id!r} is already in the project with another "
                f"{', '.join(differs)}; nothing was imported. {hint}",
                {"line": record.line, "field": "external_id", "external_id": record.external_id, "differs": differs},
            )


def _as_stored(value: Any) -> Any:
    # What a JSON field gives back for `value` (tuples become lists, keys strings).
    return json.loads(_json(value))


def _response_meta(meta: dict[str, Any], counts: dict[str, int] | None, levels: LevelMap) -> dict[str, Any]:
    if counts is None:
        return meta
    file_scale = _file_scale_of(tuple(counts))
    mapped: dict[str, int] = {}
    for level, n in counts.items():
        index = levels.index(level, file_scale=file_scale)
        mapped[levels.scale[index]] = mapped.get(levels.scale[index], 0) + int(n)
    return {**meta, "rating_counts": mapped}


def _annotations_store(
    project: Project,
    annotated: list[tuple[Item, ItemRecord, list[Response]]],
    levels: LevelMap,
    users: ImportedAnnotators,
) -> int:
    judgments, corrections, ratings, rankings = [], [], [], []
    for item, record, stored in annotated:
        taken: set[tuple] = set()
        key = (project.pk, record.external_id)
        for index, j in enumerate(record.pairwise):
            judgments.append(
                PairwiseJudgment(
                    item=item,
                    annotator=users.user(j.annotator, taken=taken, task=("pairwise",)),
                    client_request_id=import_request_id(*key, "pairwise", index, j.source_id),
                    response_a=stored[j.response_a],
                    response_b=stored[j.response_b],
                    choice=j.choice,
                    strength=max(1, round(j.strength)),
                    reason=j.reason,
                )
            )
        for index, c in enumerate(record.corrections):
            corrections.append(
                Correction(
                    item=item,
                    annotator=users.user(c.annotator, taken=taken, task=("correction", c.response)),
                    client_request_id=import_request_id(*key, "correction", index, c.source_id),
                    response=stored[c.response],
                    segments=[
                        {"start": s, "end": e, "replacement": text, "type": kind}
                        for s, e, text, kind in sorted(c.segments)
                    ],
                    corrected_text=c.corrected_text,
                )
            )
        for index, r in enumerate(record.ratings):
            ratings.append(
                Rating(
                    item=item,
                    annotator=users.user(r.annotator, taken=taken, task=("rating", r.response)),
                    client_request_id=import_request_id(*key, "rating", index, r.source_id),
                    response=stored[r.response],
                    level=levels.index(r.level),
                )
            )
        for index, r in enumerate(record.rankings):
            rankings.append(
                Ranking(
                    item=item,
                    annotator=users.user(r.annotator, taken=taken, task=("ranking",)),
                    client_request_id=import_request_id(*key, "ranking", index, r.source_id),
                    order=[stored[position].pk for position in r.order],
                )
            )
    for model, rows in (
        (PairwiseJudgment, judgments),
        (Correction, corrections),
        (Rating, ratings),
        (Ranking, rankings),
    ):
        model.objects.bulk_create(rows, batch_size=2000)
    return len(judgments) + len(corrections) + len(ratings) + len(rankings)
