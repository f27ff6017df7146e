"""`manage.py export_dataset --snapshot ID --format NAME --out PATH [--split S] [--conversational] [--images-once]`"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation import services
from annotation.formats.common import read_manifest
from annotation.management.progress import progress_bar
from annotation.models import DatasetSnapshot
from loupe.errors import ApplicationError


class Command(BaseCommand):
    help = "Export a dataset snapshot in a trainer's format (a folder with the data, images and manifest.json)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--snapshot", type=int, required=True)
        parser.add_argument(
            "--format", dest="export_format", default="trl-jsonl", choices=list(services.EXPORT_FORMATS)
        )
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--split", choices=("all", "train", "test"), default="all")
        parser.add_argument(
            "--conversational", action="store_true", help="Message lists instead of plain text (TRL and SFT formats)."
        )
        parser.add_argument(
            "--images-once",
            action="store_true",
            help="hf-dataset: store each distinct image once (small on disk; loading then holds the images in memory).",
        )

    def handle(self, *args: object, **options: object) -> None:
        snapshot = DatasetSnapshot.objects.filter(pk=options["snapshot"]).first()
        if snapshot is None:
            raise CommandError(f"No snapshot {options['snapshot']}.")
        export_options: dict = {"split": options["split"]}
        for flag in services.BOOLEAN_EXPORT_OPTIONS:
            if options[flag]:
                export_options[flag] = True
        try:
            with progress_bar(desc=f"export {options['export_format']}", unit="row", stream=self.stderr) as progress:
                written = services.snapshot_export(
                    snapshot=snapshot,
                    export_format=options["export_format"],
                    out=options["out"],
                    options=export_options,
                    progress=progress,
                )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        manifest = read_manifest(written)
        self.stderr.write(f"counts: {json.dumps(manifest['counts'])}")
        if options["split"] != "all" and not getattr(snapshot, f"n_{options['split']}"):
            self.stderr.write(
                f"warning: snapshot {snapshot.pk} has no {options['split']} rows; nothing was exported "
                f"({'; '.join(snapshot.stats.get('warnings', [])) or 'freeze it with another split'})"
            )
        self.stdout.write(f"Wrote {written}")
