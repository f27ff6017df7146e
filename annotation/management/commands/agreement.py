"""`manage.py agreement --project SLUG` prints the project's agreement report as JSON: per measure of its kind,
people with each other and each annotator (the AI labeler models too) against the other people."""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Project
from annotation.selectors_agreement import agreement_report


class Command(BaseCommand):
    help = (
        "Print a project's agreement as JSON: Krippendorff's alpha, Cohen's and Fleiss' kappa, span F1 or rank "
        "correlation by its kind, per project and per annotator, the AI labeler listed as an annotator."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="The project's slug.")

    def handle(self, *args: object, **options: object) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"--project: no project {options['project']!r}.")
        self.stdout.write(json.dumps(agreement_report(project=project), indent=2))
