"""`manage.py demo_setup`: an admin and an annotator login, tiny models (registered as model artifacts), and a
pairwise demo project of shapes-world scenes. Safe to run again: it resets the two passwords and imports or
registers nothing twice."""

import json
import secrets
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from annotation import services
from annotation.models import Project

DEMO_SLUG = "shapes-demo"


class Command(BaseCommand):
    help = "Create the demo: logins, tiny models and a pairwise project with shapes-world items."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--items", type=int, default=40)
        parser.add_argument("--skip-models", action="store_true", help="Do not build the tiny models.")

    def handle(self, *args: object, **options: object) -> None:
        users = get_user_model().objects
        logins = {}
        for username, staff in (("admin", True), ("annotator", False)):
            user = users.filter(username=username).first() or users.create_user(username=username)
            password = secrets.token_urlsafe(9)
            user.set_password(password)
            user.is_staff = user.is_superuser = staff
            user.save()
            logins[username] = (user, password)

        project = Project.objects.filter(slug=DEMO_SLUG).first()
        if project is None:
            project = services.project_create(
                slug=DEMO_SLUG,
                kind="pairwise",
                name="Shapes demo: which description is right?",
                instructions="Look at the image. Pick the answer that describes it correctly (1 or 2), "
                "or 3 if they are equally good.",
                created_by=logins["admin"][0],
            )
        services.project_member_add(project=project, user=logins["annotator"][0])
        from annotation.shapes_world import shapes_world_items

        with tempfile.TemporaryDirectory() as tmp:
            items = shapes_world_items(n=options["items"], seed=2026, image_dir=Path(tmp))
            path = Path(tmp) / "items.jsonl"
            path.write_text("".join(json.dumps(item) + "\n" for item in items))
            report = services.items_import(project=project, path=path)
        self.stdout.write(f"Demo project {DEMO_SLUG}: {report.created} new items ({report.unchanged} already there)")

        if not options["skip_models"]:
            for kind in ("lm", "vlm", "reward"):
                self._tiny_model(kind)

        for username, (_, password) in logins.items():
            self.stdout.write(f"Login: {username} / {password}")

    def _tiny_model(self, kind: str) -> None:
        """Build the tiny `kind` model once and register it as a model artifact named after its folder, so the
        run form's base-model list and the models page offer it."""
        from training.models import ArtifactKind, ModelArtifact
        from training.services import model_artifact_register
        from training.tiny_models import make_tiny_model

        name = f"tiny-{kind}"
        out = Path(settings.MODELS_DIR) / name
        if not (out / "config.json").exists():
            make_tiny_model(kind=kind, out_dir=out)
        registered = ModelArtifact.objects.filter(name=name).first()
        if registered is None:
            artifact_kind = ArtifactKind.REWARD if kind == "reward" else ArtifactKind.POLICY
            registered = model_artifact_register(name=name, location=str(out.absolute()), kind=artifact_kind)
        elif Path(registered.location).absolute() != out.absolute():
            self.stdout.write(f"A model named {name} is registered already, at {registered.location}; kept.")
        self.stdout.write(f"Tiny {kind} model: {out} (registered as {registered.name})")
