"""`manage.py import_items --project SLUG [--format NAME] FILE [--images DIR|ZIP] [--image CARTOON] [--strict]`"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation import services
from annotation.management.progress import progress_bar
from annotation.models import Project
from loupe.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Import items (and the annotations the file carries) into a project; a bad line rejects the whole file "
        "and stores nothing. Formats: " + ", ".join(services.IMPORT_FORMATS) + "."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--project", required=True)
        parser.add_argument("--format", dest="import_format", default="loupe-jsonl", choices=services.IMPORT_FORMATS)
        parser.add_argument(
            "--images", type=Path, help="Folder or zip the image paths are relative to (default: the file's folder)."
        )
        parser.add_argument("--image", type=Path, help="The cartoon of a caption-contest table.")
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Fail a caption-contest import on a row that cannot be a caption (empty text, no votes, a mean "
            "off the scale) instead of skipping and listing it. Other formats are always strict.",
        )

    def handle(self, *args: object, **options: object) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        try:
            with progress_bar(desc=f"import {path.name}", unit="item", stream=self.stderr) as progress:
                report = services.items_import(
                    project=project,
                    path=path,
                    images=options["images"],
                    import_format=options["import_format"],
                    image=options["image"],
                    strict=options["strict"],
                    progress=progress,
                )
        except ApplicationError as error:
            raise CommandError(f"Import failed, nothing was stored: {error.message}") from error
        for warning in report.warnings:
            self.stderr.write(f"Warning: {warning}")
        self.stdout.write(
            f"Imported {report.created} new items ({report.unchanged} already present, unchanged), "
            f"{report.annotations} annotations, {report.pairs} preference pairs "
            f"({report.self_pairs_dropped} dropped as the same answer twice)" + _caption_notes(report)
        )


def _caption_notes(report: services.ImportReport) -> str:
    """What a caption-contest import left out or kept twice, for the result line: every skipped row's line,
    grouped by why it cannot be a caption."""
    lines_by_reason: dict[str, list[str]] = {}
    for row in report.skipped_rows:
        lines_by_reason.setdefault(row["reason"], []).append(str(row["line"]))
    text = ""
    if lines_by_reason:
        groups = "; ".join(
            f"{reason} on line{'s' if len(lines) > 1 else ''} {', '.join(lines)}"
            for reason, lines in lines_by_reason.items()
        )
        text += (
            f"; rows skipped as they cannot be captions: {len(report.skipped_rows)} ({groups}; --strict refuses them)"
        )
    if report.disagreeing_rows:
        disagreeing = report.disagreeing_rows
        text += f"; captions whose own score or count disagrees with their level counts: {disagreeing} (both kept)"
    return text
