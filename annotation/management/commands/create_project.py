"""`manage.py create_project SLUG --kind pairwise|correction|rating|ranking`"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation import services
from annotation.models import ProjectKind
from loupe.errors import ApplicationError


class Command(BaseCommand):
    help = "Create an annotation project."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--kind", required=True, choices=ProjectKind.values)
        parser.add_argument("--name", default="")
        parser.add_argument("--instructions", default="")
        parser.add_argument("--overlap", type=int, default=1, help="Distinct annotators per item.")
        parser.add_argument("--owner", help="Username made the project's manager.")
        parser.add_argument("--annotator", action="append", default=[], help="Username added as annotator.")

    def handle(self, *args: object, **options: object) -> None:
        users = get_user_model().objects
        owner = users.filter(username=options["owner"]).first() if options["owner"] else None
        if options["owner"] and owner is None:
            raise CommandError(f"No user named {options['owner']!r}.")
        try:
            project = services.project_create(
                slug=options["slug"],
                kind=options["kind"],
                name=options["name"],
                instructions=options["instructions"],
                overlap=options["overlap"],
                created_by=owner,
            )
            for username in options["annotator"]:
                user = users.filter(username=username).first()
                if user is None:
                    raise CommandError(f"No user named {username!r}.")
                services.project_member_add(project=project, user=user)
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Created {project.kind} project {project.slug}")
