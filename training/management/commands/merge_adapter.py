"""`manage.py merge_adapter --artifact NAME`: merge a LoRA adapter artifact into a full model, here and now."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from loupe.errors import ApplicationError
from training import services
from training.models import ModelArtifact


class Command(BaseCommand):
    help = "Merge a LoRA adapter (a model artifact) into its base and register the merged full model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--artifact", required=True, help="Name of the adapter artifact.")

    def handle(self, *args: object, **options: object) -> None:
        artifact = ModelArtifact.objects.filter(name=options["artifact"]).first()
        if artifact is None:
            raise CommandError(f"No model named {options['artifact']!r}.")
        try:
            merged = services.model_artifact_merge_execute(artifact_id=artifact.pk)
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Merged {artifact.name} into {merged.name} at {merged.location}")
