"""`manage.py export_dataset --snapshot ID --format NAME --out PATH`"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation import services
from annotation.models import DatasetSnapshot
from loupe.errors import ApplicationError


class Command(BaseCommand):
    help = "Export a dataset snapshot in a trainer's format."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--snapshot", type=int, required=True)
        parser.add_argument("--format", dest="export_format", default="trl-jsonl", help="e.g. trl-jsonl")
        parser.add_argument("--out", type=Path, required=True)

    def handle(self, *args: object, **options: object) -> None:
        snapshot = DatasetSnapshot.objects.filter(pk=options["snapshot"]).first()
        if snapshot is None:
            raise CommandError(f"No snapshot {options['snapshot']}.")
        try:
            written = services.snapshot_export(
                snapshot=snapshot, export_format=options["export_format"], out=options["out"]
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Wrote {written}")
