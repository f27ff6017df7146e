"""`manage.py create_project SLUG --kind pairwise|correction|rating|ranking [--visibility members|public]
[--owner USERNAME] [--annotator USERNAME_OR_EMAIL ...] [--manager USERNAME_OR_EMAIL ...]`"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation import services
from annotation.models import ProjectKind, Visibility
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
        parser.add_argument(
            "--annotator", action="append", default=[], help="Username or email added as annotator (repeatable)."
        )
        parser.add_argument(
            "--manager", action="append", default=[], help="Username or email added as manager (repeatable)."
        )
        parser.add_argument(
            "--visibility",
            choices=Visibility.values,
            default=Visibility.MEMBERS,
            help="members (default): only members see it; public: anyone, without an account, at /crowd/SLUG/.",
        )

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
                visibility=options["visibility"],
                created_by=owner,
                annotators=options["annotator"],
                managers=options["manager"],
            )
        except ApplicationError as error:
            field = error.extra.get("field")
            prefix = f"--{field.rstrip('s')}: " if field in ("annotators", "managers", "overlap") else ""
            raise CommandError(f"{prefix}{error.message}") from error
        where = f"; crowd page /crowd/{project.slug}/" if project.visibility == Visibility.PUBLIC else ""
        self.stdout.write(f"Created {project.kind} project {project.slug} ({project.visibility}{where})")
