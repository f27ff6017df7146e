"""`manage.py snapshot --project SLUG [filters]` freezes the project's rows and prints the snapshot id."""

import argparse
import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation import services
from annotation.models import PairSource, Project
from loupe.errors import ApplicationError


class Command(BaseCommand):
    help = "Freeze a project's preference pairs (or SFT rows, or rating counts) into an immutable, hashed snapshot."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--kind", choices=services.SNAPSHOT_KINDS, default="pairs")
        parser.add_argument("--source", action="append", choices=PairSource.values, default=[])
        parser.add_argument("--min-agreement", type=float, default=0.0)
        parser.add_argument("--min-margin", type=float, default=0.0)
        parser.add_argument(
            "--annotator", action="append", default=[], help="Only this user's annotations (repeatable; ai:MODEL)."
        )
        parser.add_argument("--date-from", help="Only annotations made on or after this ISO date/datetime.")
        parser.add_argument("--date-to", help="Only annotations made on or before this ISO date/datetime.")
        parser.add_argument(
            "--sft-threshold",
            type=float,
            help="Mean rating from which a response is [GOOD] (default: the median of the rated responses' means).",
        )
        parser.add_argument(
            "--no-balance-ai-lengths",
            dest="balance_ai_lengths",
            action="store_false",
            help="Keep every AI pair (by default RLAIF-V's length balancing runs over the snapshot's AI pairs).",
        )
        parser.add_argument(
            "--ai-rewrite-pairs",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Keep (or leave out) the AI labeler's rewrite pairs (default: kept in correction projects only).",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--test-fraction", type=float, default=0.1)
        parser.add_argument(
            "--split-by",
            choices=services.SPLIT_BY,
            help="Split train/test by item or by response (default: response in rating projects, else item).",
        )
        parser.add_argument(
            "--require-accepted",
            action="store_true",
            help="Only annotations a reviewer accepted or edited (edited ones in the reviewer's version).",
        )
        parser.add_argument(
            "--min-trust",
            type=float,
            default=None,
            help="Leave out annotators whose trust score on gold tasks is below this (0 to 1).",
        )
        parser.add_argument(
            "--exclude-flagged",
            action="store_true",
            help="Leave out annotators flagged for straight-lining or answering too fast.",
        )

    def handle(self, *args: object, **options: object) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        try:
            snapshot_filter = services.SnapshotFilter(
                kind=options["kind"],
                sources=tuple(options["source"]),
                min_agreement=options["min_agreement"],
                min_margin=options["min_margin"],
                annotators=tuple(options["annotator"]),
                date_from=options["date_from"],
                date_to=options["date_to"],
                sft_threshold=options["sft_threshold"],
                balance_ai_lengths=options["balance_ai_lengths"],
                seed=options["seed"],
                test_fraction=options["test_fraction"],
                split_by=options["split_by"],
                ai_rewrite_pairs=options["ai_rewrite_pairs"],
                require_accepted=options["require_accepted"],
                min_trust=options["min_trust"],
                exclude_flagged=options["exclude_flagged"],
            )
            snapshot = services.snapshot_create(project=project, created_by=None, snapshot_filter=snapshot_filter)
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stderr.write(
            f"snapshot {snapshot.pk}: {snapshot.n_rows} rows ({snapshot.n_train} train, {snapshot.n_test} test), "
            f"sha256 {snapshot.content_hash}"
        )
        if snapshot.stats:
            self.stderr.write(f"stats: {json.dumps(snapshot.stats, sort_keys=True)}")
        for warning in snapshot.stats.get("warnings", []):
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(str(snapshot.pk))
