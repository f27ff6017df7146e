"""Exports of snapshots in the formats trainers and other tools read."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from annotation.models import (
    DatasetSnapshot,
)
from loupe.errors import ApplicationError


def snapshot_export(*, snapshot: DatasetSnapshot, export_format: str, out: Path) -> Path:
    """Write the snapshot in `export_format` into the folder `out` (data files, images, manifest.json)."""
    from annotation.formats import FORMAT_WRITERS
    from annotation.selectors import snapshot_rows

    writer = FORMAT_WRITERS.get(export_format)
    if writer is None:
        raise ApplicationError(
            f"Unknown export format {export_format!r}; choose one of {', '.join(sorted(FORMAT_WRITERS))}.",
            {"field": "format"},
        )

    def pair_rows() -> Iterator[dict]:
        for row in snapshot_rows(snapshot=snapshot):
            split = row.pop("split")
            yield {**row, "meta": {"split": split}}

    writer(
        rows=pair_rows(),
        out_dir=out,
        snapshot_hash=snapshot.content_hash,
        image_root=Path(settings.MEDIA_ROOT),
    )
    return out


def snapshot_export_archive(*, snapshot: DatasetSnapshot, export_format: str) -> Path:
    """A zip of the export, made once per (snapshot, format): snapshots are immutable, so it never goes stale."""
    import shutil
    import zipfile

    archive = Path(settings.EXPORTS_DIR) / f"{snapshot.content_hash[:16]}-{export_format}.zip"
    if archive.exists():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
        folder = snapshot_export(snapshot=snapshot, export_format=export_format, out=Path(tmp) / "export")
        partial = Path(tmp) / "export.zip"
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for file in sorted(folder.rglob("*")):
                if file.is_file():
                    bundle.write(file, file.relative_to(folder))
        shutil.move(partial, archive)
    return archive
