"""`manage.py train --method dpo --snapshot ID (--base-model DIR | --base-artifact NAME) [--config JSON] [--wait]`"""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.management.progress import job_follow
from annotation.models import DatasetSnapshot
from loupe.errors import ApplicationError
from training import services
from training.models import JobStatus, ModelArtifact, TrainingRun


class Command(BaseCommand):
    help = "Queue a training run on a Celery worker; with --wait, follow its progress here."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--method", required=True, choices=sorted(services.METHOD_CONFIGS))
        parser.add_argument("--snapshot", type=int, required=True)
        base = parser.add_mutually_exclusive_group(required=True)
        base.add_argument("--base-model", help="Hub name or local folder.")
        base.add_argument("--base-artifact", help="Name of a registered model (see the models page).")
        parser.add_argument("--config", default="{}", help="Method config as JSON, e.g. '{\"max_steps\": 10}'.")
        parser.add_argument("--wait", action="store_true", help="Show progress until the run ends.")

    def handle(self, *args: object, **options: object) -> None:
        snapshot = DatasetSnapshot.objects.filter(pk=options["snapshot"]).first()
        if snapshot is None:
            raise CommandError(f"No snapshot {options['snapshot']}.")
        try:
            config = json.loads(options["config"])
        except json.JSONDecodeError as error:
            raise CommandError(f"--config is not valid JSON: {error}") from error
        base_artifact = None
        if options["base_artifact"]:
            base_artifact = ModelArtifact.objects.filter(name=options["base_artifact"]).first()
            if base_artifact is None:
                raise CommandError(f"No model named {options['base_artifact']!r}.")
        try:
            run = services.training_run_create(
                method=options["method"],
                snapshot=snapshot,
                base_model=options["base_model"] or "",
                base_artifact=base_artifact,
                config=config,
                created_by=None,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Queued training run {run.pk}")
        if options["wait"]:
            self._follow(run.pk)

    def _follow(self, run_id: int) -> None:
        def read() -> tuple[str, int, int]:
            run = TrainingRun.objects.get(pk=run_id)
            return run.status, run.step, run.max_steps

        job_follow(desc=f"run {run_id}", unit="step", read=read)
        run = TrainingRun.objects.get(pk=run_id)
        if run.status != JobStatus.SUCCEEDED:
            raise CommandError(f"Run {run_id} ended {run.status}:\n{run.log[-3000:]}")
        self.stdout.write(f"Run {run_id} succeeded; output in {run.output_dir}/model")
