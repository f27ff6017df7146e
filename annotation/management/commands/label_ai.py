"""`manage.py label_ai --project SLUG --backend local|openai --model PATH [--base-url URL] [--prompt-version V]
[--config JSON] [--wait]`: queue an AI labeler job (a worker on the `labeler` queue runs it); with --wait, follow
its progress here. The API key of a server comes from LOUPE_LABELER_API_KEY in the worker's environment."""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.labeler.backends import BACKEND_KINDS
from annotation.management.progress import job_follow
from annotation.models import JobStatus, LabelerJob, Project
from annotation.services.labeler import labeler_job_start
from loupe.errors import ApplicationError


class Command(BaseCommand):
    help = "Queue an AI labeler job over a project's responses; with --wait, follow its progress here."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--backend", required=True, choices=BACKEND_KINDS)
        parser.add_argument("--model", required=True, help="Local: folder or hub name. OpenAI: the served model.")
        parser.add_argument("--base-url", default="", help="The OpenAI-compatible server, e.g. http://host:8000/v1.")
        parser.add_argument("--prompt-version", default="v1")
        parser.add_argument("--config", default="{}", help="LabelerConfig fields as JSON, e.g. '{\"batch_size\": 8}'.")
        parser.add_argument("--wait", action="store_true", help="Show progress until the job ends.")

    def handle(self, *args: object, **options: object) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        try:
            config = json.loads(options["config"])
        except json.JSONDecodeError as error:
            raise CommandError(f"--config is not valid JSON: {error}") from error
        if not isinstance(config, dict):
            raise CommandError("--config must be a JSON object.")
        try:
            job = labeler_job_start(
                project=project,
                backend=options["backend"],
                model=options["model"],
                base_url=options["base_url"],
                prompt_version=options["prompt_version"],
                config=config,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Queued labeler job {job.pk} over {job.total} answers")
        if options["wait"]:
            self._follow(job.pk)

    def _follow(self, job_id: int) -> None:
        def read() -> tuple[str, int, int]:
            job = LabelerJob.objects.get(pk=job_id)
            return job.status, job.done, job.total

        job_follow(desc=f"labeler job {job_id}", unit="answer", read=read)
        job = LabelerJob.objects.get(pk=job_id)
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"Labeler job {job_id} ended {job.status}:\n{job.log[-3000:]}")
        self.stdout.write(f"Labeler job {job_id} succeeded: {job.labelled} answers labelled")
