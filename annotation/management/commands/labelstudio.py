"""`manage.py labelstudio push|pull --project SLUG --url URL --api-key KEY`: Label Studio interchange."""

import json
import os

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Project
from annotation.services.labelstudio import labelstudio_pull, labelstudio_push
from loupe.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "push: create a Label Studio project whose labeling config fits the Loupe project's kind and send it the "
        "project's tasks (again: only the missing ones). pull: bring the annotations made there back as Loupe "
        "annotations (again: nothing twice)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=("push", "pull"))
        parser.add_argument("--project", required=True, help="The Loupe project's slug.")
        parser.add_argument("--url", required=True, help="The Label Studio server, e.g. http://localhost:8080.")
        parser.add_argument(
            "--api-key",
            default=os.environ.get("LABEL_STUDIO_API_KEY", ""),
            help="Access token (legacy token or personal access token); default: $LABEL_STUDIO_API_KEY.",
        )
        parser.add_argument("--ls-project", type=int, help="pull: the Label Studio project id (default: found).")
        parser.add_argument("--title", help="push: the new Label Studio project's title.")
        parser.add_argument(
            "--image-url-prefix",
            help="push: send images as this prefix + the stored path instead of embedding them as data: URIs.",
        )

    def handle(self, *args: object, **options: object) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        try:
            if options["action"] == "push":
                report = labelstudio_push(
                    project=project,
                    url=options["url"],
                    api_key=options["api_key"],
                    title=options["title"],
                    image_url_prefix=options["image_url_prefix"],
                )
            else:
                report = labelstudio_pull(
                    project=project, url=options["url"], api_key=options["api_key"], ls_project_id=options["ls_project"]
                )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(json.dumps(report.as_dict()))
