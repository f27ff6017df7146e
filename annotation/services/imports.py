"""Imports of items with their images and responses: all or nothing, naming the line and field at fault."""

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from annotation.formats.common import FormatError, ItemRecord
from annotation.formats.loupe_jsonl import read_loupe_jsonl
from annotation.images import CheckedImage, ImageRejected, ImageSource, image_check, url_fetch_checked
from annotation.models import (
    Item,
    Project,
    Response,
)
from loupe.errors import ApplicationError


@dataclass(frozen=True)
class ImportReport:
    created: int
    unchanged: int

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "unchanged": self.unchanged}


def _import_error(error: FormatError | ImageRejected, *, line: int, field: str = "image") -> ApplicationError:
    if isinstance(error, FormatError):
        return ApplicationError(str(error), {"line": error.line, "field": error.field})
    return ApplicationError(f"line {line}, field {field!r}: {error}", {"line": line, "field": field})


class _ImageLoader:
    """Resolves an item's image reference (relative path or URL) to checked bytes."""

    def __init__(self, *, base: Path) -> None:
        self.source = ImageSource(base)

    def load(self, reference: str) -> CheckedImage:
        if reference.startswith(("http://", "https://")):
            data = url_fetch_checked(
                reference,
                max_bytes=settings.LOUPE_MAX_IMAGE_BYTES,
                allow_private=settings.LOUPE_ALLOW_PRIVATE_URLS,
            )
        else:
            data = self.source.read(reference, max_bytes=settings.LOUPE_MAX_IMAGE_BYTES)
        return image_check(data, max_bytes=settings.LOUPE_MAX_IMAGE_BYTES, max_pixels=settings.LOUPE_MAX_IMAGE_PIXELS)


def _validated_records(path: Path) -> Iterator[ItemRecord]:
    """The file's records, raising ApplicationError naming the line and field of the first bad one."""
    try:
        yield from read_loupe_jsonl(path)
    except FormatError as error:
        raise _import_error(error, line=error.line or 0) from error


def items_import(*, project: Project, path: Path, images: Path | None = None, batch_size: int = 2000) -> ImportReport:
    """Import Loupe JSONL items with their images and responses; all or nothing.

    A first pass reads and checks every line and image without writing; only a file that passes whole is
    stored, in one transaction. Items whose external id the project already has are left as they are,
    so importing the same file again changes nothing.
    """
    loader = _ImageLoader(base=images if images is not None else path.parent)
    try:
        # Pass 1: validate everything (streaming; nothing is kept but the ids seen).
        for record in _validated_records(path):
            if record.image:
                try:
                    loader.load(record.image)
                except ImageRejected as error:
                    raise _import_error(error, line=record.line) from error
        # Pass 2: write.
        return _items_store(project=project, path=path, loader=loader, batch_size=batch_size)
    finally:
        loader.source.close()


def _items_store(*, project: Project, path: Path, loader: _ImageLoader, batch_size: int) -> ImportReport:
    written_files: list[Path] = []
    created = unchanged = 0
    try:
        with transaction.atomic():
            batch: list[ItemRecord] = []
            for record in _validated_records(path):
                batch.append(record)
                if len(batch) >= batch_size:
                    c, u = _items_store_batch(project=project, records=batch, loader=loader, written=written_files)
                    created, unchanged, batch = created + c, unchanged + u, []
            if batch:
                c, u = _items_store_batch(project=project, records=batch, loader=loader, written=written_files)
                created, unchanged = created + c, unchanged + u
    except BaseException:
        for written in written_files:
            written.unlink(missing_ok=True)
        raise
    return ImportReport(created=created, unchanged=unchanged)


def _image_store(image: CheckedImage, *, written: list[Path]) -> str:
    target = Path(settings.MEDIA_ROOT) / image.storage_name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
            handle.write(image.data)
        os.replace(handle.name, target)
        written.append(target)
    return image.storage_name


def _items_store_batch(
    *, project: Project, records: list[ItemRecord], loader: _ImageLoader, written: list[Path]
) -> tuple[int, int]:
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
            image=_image_store(loader.load(r.image), written=written) if r.image else "",
        )
        for r in fresh
    ]
    Item.objects.bulk_create(items)
    responses = [
        Response(item=item, position=position, text=response.text, model_name=response.model, meta=response.meta)
        for item, record in zip(items, fresh, strict=True)
        for position, response in enumerate(record.responses)
    ]
    Response.objects.bulk_create(responses)
    return len(fresh), len(records) - len(fresh)
