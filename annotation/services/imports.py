"""Imports of items with their images, responses and annotations, from every format family Loupe reads
(`annotation.formats.FORMAT_READERS`): all or nothing, naming the line and field at fault.

An import makes two streaming passes over the file. The first reads and checks every record — its
fields (the format's reader), its annotations against the project (response indexes, rating levels,
segments) and its image — and writes nothing. Only a file that passes whole is stored, in one
transaction, in batches (`bulk_create`). Items whose external id the project already has are left as
they are, annotations included, so importing the same file again changes nothing.

Annotations in a file (RLHF-V corrections, RLAIF-V preferences, Label Studio results, ratings) are
stored as annotations by inactive users named `import:<annotator>` (`import:anonymous` where the file
names nobody), so they count like any other annotator's and snapshots can filter on them. Aggregate
rating counts (caption-contest tables) are kept on the response, `Response.meta["rating_counts"]`, keyed
by the project's level names. The imported items' preference pairs are derived right after.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.formats import FORMAT_READERS
from annotation.formats.common import FormatError, ItemRecord
from annotation.images import CheckedImage, ImageRejected, ImageSource, image_check, url_fetch_checked
from annotation.models import (
    Correction,
    Item,
    PairwiseJudgment,
    Project,
    Ranking,
    Rating,
    Response,
)
from annotation.pairs import HUMOR_SCALE, PAIRWISE_CHOICES, segments_check
from annotation.services.pairs import preference_pairs_rebuild, rating_scale
from annotation.services.queue import queue_units_sync
from loupe.errors import ApplicationError

IMPORT_FORMATS = tuple(FORMAT_READERS)
IMPORTED_ANNOTATOR_PREFIX = "import"
# Called with (records done, records in all) while an import stores; may raise to stop it (nothing is kept).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImportReport:
    created: int
    unchanged: int
    annotations: int = 0
    pairs: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "unchanged": self.unchanged,
            "annotations": self.annotations,
            "pairs": self.pairs,
        }


def _import_error(error: FormatError | ImageRejected, *, line: int, field: str = "image") -> ApplicationError:
    if isinstance(error, FormatError):
        return ApplicationError(str(error), {"line": error.line, "field": error.field})
    return ApplicationError(f"line {line}, field {field!r}: {error}", {"line": line, "field": field})


class _ImageLoader:
    """Resolves an item's image (bytes embedded in the file, a relative path, or a URL) to checked bytes."""

    def __init__(self, *, base: Path) -> None:
        self.source = ImageSource(base)

    def load(self, record: ItemRecord) -> CheckedImage:
        limits = {"max_bytes": settings.LOUPE_MAX_IMAGE_BYTES, "max_pixels": settings.LOUPE_MAX_IMAGE_PIXELS}
        if record.image_bytes is not None:
            return image_check(record.image_bytes, **limits)
        reference = record.image or ""
        if reference.startswith(("http://", "https://")):
            data = url_fetch_checked(
                reference, max_bytes=settings.LOUPE_MAX_IMAGE_BYTES, allow_private=settings.LOUPE_ALLOW_PRIVATE_URLS
            )
        else:
            data = self.source.read(reference, max_bytes=settings.LOUPE_MAX_IMAGE_BYTES)
        return image_check(data, **limits)


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


def record_check(record: ItemRecord, *, levels: LevelMap) -> None:
    """Check the record's annotations against its responses and the project's scale (FormatError)."""
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
    for index, correction in enumerate(record.corrections):
        where = f"corrections[{index}]"
        response_index(correction.response, f"{where}.response")
        try:
            segments_check(record.responses[correction.response].text, correction.segments)
        except ValueError as error:
            raise FormatError(str(error), line=line, field=f"{where}.segments") from None
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
    return {}


def items_import(
    *,
    project: Project,
    path: Path,
    images: Path | None = None,
    import_format: str = "loupe-jsonl",
    image: Path | None = None,
    batch_size: int = 2000,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a file of `import_format` into `project`; all or nothing.

    `images` is the folder or zip archive that relative image paths resolve in (default: the file's
    folder); `image` is a caption contest's cartoon. A first pass reads and checks every record and image
    without writing; only a file that passes whole is stored, in one transaction.
    """
    if import_format not in FORMAT_READERS:
        raise ApplicationError(
            f"Unknown import format {import_format!r}; choose one of {', '.join(IMPORT_FORMATS)}.",
            {"field": "format"},
        )
    options = _reader_options(import_format, project=project, image=image)
    levels = LevelMap(rating_scale(project))
    try:
        loader = _ImageLoader(base=images if images is not None else path.parent)
    except ImageRejected as error:
        raise ApplicationError(str(error), {"field": "images"}) from error
    try:
        # Pass 1: validate everything (streaming; the readers keep only the ids they have seen).
        total = 0
        for record in _records(path, import_format=import_format, options=options):
            try:
                record_check(record, levels=levels)
            except FormatError as error:
                raise _import_error(error, line=record.line) from error
            if record.image or record.image_bytes is not None:
                try:
                    loader.load(record)
                except ImageRejected as error:
                    raise _import_error(error, line=record.line) from error
            total += 1
        if progress is not None:
            progress(0, total)
        # Pass 2: write.
        return _items_store(
            project=project,
            records=_records(path, import_format=import_format, options=options),
            loader=loader,
            levels=levels,
            batch_size=batch_size,
            progress=progress,
            total=total,
        )
    finally:
        loader.source.close()


def _items_store(
    *,
    project: Project,
    records: Iterator[ItemRecord],
    loader: _ImageLoader,
    levels: LevelMap,
    batch_size: int,
    progress: Progress | None,
    total: int,
) -> ImportReport:
    written_files: list[Path] = []
    totals = {"created": 0, "unchanged": 0, "annotations": 0, "pairs": 0}
    users = ImportedAnnotators()
    try:
        with transaction.atomic():
            batch: list[ItemRecord] = []
            done = 0
            for record in records:
                batch.append(record)
                if len(batch) >= batch_size:
                    _add(totals, _items_store_batch(project, batch, loader, levels, users, written_files))
                    done, batch = done + len(batch), []
                    if progress is not None:
                        progress(done, total)
            if batch:
                _add(totals, _items_store_batch(project, batch, loader, levels, users, written_files))
                done += len(batch)
                if progress is not None:
                    progress(done, total)
    except BaseException:
        for written in written_files:
            written.unlink(missing_ok=True)
        raise
    return ImportReport(**totals)


def _add(totals: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        totals[key] += value


def _image_store(image: CheckedImage, *, written: list[Path]) -> str:
    target = Path(settings.MEDIA_ROOT) / image.storage_name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
            handle.write(image.data)
        os.replace(handle.name, target)
        written.append(target)
    return image.storage_name


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


def _items_store_batch(
    project: Project,
    records: list[ItemRecord],
    loader: _ImageLoader,
    levels: LevelMap,
    users: ImportedAnnotators,
    written: list[Path],
) -> dict[str, int]:
    existing = set(
        Item.objects.filter(project=project, external_id__in=[r.external_id for r in records]).values_list(
            "external_id", flat=True
        )
    )
    fresh = [r for r in records if r.external_id not in existing]
    items = [
        Item(
            project=project,
            external_id=r.external_id,
            prompt=r.prompt,
            meta=r.meta,
            image=_image_store(loader.load(r), written=written) if (r.image or r.image_bytes is not None) else "",
        )
        for r in fresh
    ]
    Item.objects.bulk_create(items)
    responses: list[list[Response]] = []
    for item, record in zip(items, fresh, strict=True):
        responses.append(
            [
                Response(
                    item=item,
                    position=position,
                    text=response.text,
                    model_name=response.model,
                    meta=_response_meta(response.meta, response.rating_counts, levels),
                )
                for position, response in enumerate(record.responses)
            ]
        )
    Response.objects.bulk_create([r for rs in responses for r in rs], batch_size=5000)
    annotated = [
        (item, record, stored)
        for item, record, stored in zip(items, fresh, responses, strict=True)
        if record.pairwise or record.corrections or record.ratings or record.rankings
    ]
    n_annotations = _annotations_store(project, annotated, levels, users) if annotated else 0
    if n_annotations:
        # Imported annotations fill the queue's slots like submitted ones (done and taken counts).
        queue_units_sync(project=project)
    with_feedback = [
        item
        for item, record in zip(items, fresh, strict=True)
        if record.pairwise
        or record.corrections
        or record.ratings
        or record.rankings
        or any(r.rating_counts for r in record.responses)
    ]
    for item in with_feedback:
        item.project = project
    n_pairs = preference_pairs_rebuild(items=with_feedback) if with_feedback else 0
    return {
        "created": len(fresh),
        "unchanged": len(records) - len(fresh),
        "annotations": n_annotations,
        "pairs": n_pairs,
    }


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
