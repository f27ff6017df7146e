"""`manage.py rounds --project SLUG --base-model NAME_OR_FOLDER --rounds K --labeler-model PATH [--labeler-backend
local|openai] [--labeler-base-url URL] [--config JSON] [--wait]`, or `manage.py rounds --resume ID [--wait]`:
queue K rounds of generate → label → snapshot → DPO (RLAIF-V, `training.rounds`) on a worker of the `training`
queue; with --wait, follow them here (a bar over every step of every round) and print each round's models."""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.management.progress import job_follow
from annotation.models import Project
from loupe.errors import ApplicationError
from training import rounds
from training.models import JobStatus, Round, RoundsRun


class Command(BaseCommand):
    help = "Queue K RLAIF-V rounds (generate, label, snapshot, DPO) on a project; --wait follows them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="The project whose items' prompts every round samples.")
        parser.add_argument("--base-model", help="Registered model name or id, or a folder or hub name.")
        parser.add_argument("--rounds", type=int, dest="n_rounds", help="How many rounds (K).")
        parser.add_argument("--labeler-model", help="The AI labeler: folder or hub name, or the served model.")
        parser.add_argument("--labeler-backend", choices=rounds.LABELER_BACKENDS, default=None)
        parser.add_argument("--labeler-base-url", default=None, help="The labeler's OpenAI-compatible server.")
        parser.add_argument(
            "--config",
            default="{}",
            help='RoundsConfig as JSON, e.g. \'{"samples_per_prompt": 4, "train_config": {"max_steps": 20}}\'.',
        )
        parser.add_argument("--resume", type=int, metavar="ID", help="Resume a failed or cancelled rounds run.")
        parser.add_argument("--wait", action="store_true", help="Show progress until the run ends.")

    def handle(self, *args: object, **options: object) -> None:
        try:
            run = self._resume(options["resume"]) if options["resume"] else self._start(options)
        except ApplicationError as error:
            raise CommandError(error.message) from error
        if options["wait"]:
            self._follow(run.pk)

    def _resume(self, run_id: int) -> RoundsRun:
        run = RoundsRun.objects.filter(pk=run_id).first()
        if run is None:
            raise CommandError(f"No rounds run {run_id}.")
        run = rounds.rounds_run_resume(rounds_run=run)
        self.stdout.write(f"Resumed rounds run {run.pk} at round {run.current_round}, {run.step or 'the start'}")
        return run

    def _start(self, options: dict) -> RoundsRun:
        flags = {"project": "--project", "base_model": "--base-model", "n_rounds": "--rounds"}
        missing = [flag for name, flag in flags.items() if not options[name]]
        if missing:
            raise CommandError(f"Give {', '.join(missing)} (or --resume ID).")
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        try:
            config = json.loads(options["config"])
        except json.JSONDecodeError as error:
            raise CommandError(f"--config is not valid JSON: {error}") from error
        if not isinstance(config, dict):
            raise CommandError("--config must be a JSON object.")
        for option, name in (
            ("labeler_model", "labeler_model"),
            ("labeler_backend", "labeler_backend"),
            ("labeler_base_url", "labeler_base_url"),
        ):
            if options[option] is not None:
                config[name] = options[option]
        run = rounds.rounds_run_start(
            project=project,
            base_model=options["base_model"],
            n_rounds=options["n_rounds"],
            config=config,
            created_by=None,
        )
        self.stdout.write(f"Queued rounds run {run.pk}: {run.n_rounds} rounds on {project.slug}")
        return run

    def _follow(self, run_id: int) -> None:
        def read() -> tuple[str, int, int]:
            run = RoundsRun.objects.get(pk=run_id)
            return run.status, run.steps_done, run.steps_total

        job_follow(desc=f"rounds run {run_id}", unit="step", read=read)
        run = RoundsRun.objects.get(pk=run_id)
        for round_ in Round.objects.filter(rounds_run=run).select_related("policy", "model"):
            trained = round_.model.name if round_.model else "(not trained)"
            self.stdout.write(f"Round {round_.number}: {round_.policy.name} -> {trained} {json.dumps(round_.figures)}")
        if run.status != JobStatus.SUCCEEDED:
            raise CommandError(
                f"Rounds run {run_id} ended {run.status} at round {run.current_round} ({run.step}); "
                f"resume with --resume {run_id}:\n{run.log[-3000:]}"
            )
        self.stdout.write(f"Rounds run {run_id} succeeded")
