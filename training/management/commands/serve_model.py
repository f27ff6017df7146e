"""`manage.py serve_model ARTIFACT [--host 127.0.0.1] [--port 8000] [--max-batch 8] [--api-key KEY]`: serve a
model over an OpenAI-compatible chat-completions API (``training.serving``) until SIGTERM or Ctrl-C."""

import signal
import threading
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from loupe.env import env_str
from training.models import ArtifactKind, ModelArtifact

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def model_to_serve(reference: str) -> tuple[str, str]:
    """``(location, served name)`` for a model folder (served under the path as given, as vLLM names it), a
    registered model's id or its name (served under its name). Only a policy can answer: a reward model or a
    samples artifact is refused."""
    if Path(reference).is_dir():
        return reference, reference
    artifact = ModelArtifact.objects.filter(name=reference).first()
    if artifact is None and reference.isdigit():
        artifact = ModelArtifact.objects.filter(pk=int(reference)).first()
    if artifact is None:
        raise CommandError(f"{reference!r} is neither a model folder nor a registered model's id or name.")
    if artifact.kind != ArtifactKind.POLICY:
        raise CommandError(f"{artifact.name} is not a policy ({artifact.get_kind_display()}): it cannot answer chats.")
    return artifact.location, artifact.name


class Command(BaseCommand):
    help = "Serve a registered model (id or name) or a model folder over an OpenAI-compatible chat API."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("artifact", help="A registered model's id or name, or a model folder.")
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (loopback by default).")
        parser.add_argument("--port", type=int, default=8000, help="Port to bind; 0 picks a free one.")
        parser.add_argument("--max-batch", type=int, default=8, help="Most answers generated together.")
        parser.add_argument(
            "--batch-wait-ms", type=float, default=0.0, help="How long a request that finds the model idle waits."
        )
        parser.add_argument("--served-model-name", help="The model id clients send (default: the name given).")
        parser.add_argument("--device", help="torch device, e.g. cuda (default: the CPU, fp32).")
        parser.add_argument(
            "--api-key",
            default=env_str("LOUPE_SERVE_API_KEY", "") or None,
            help="Require `Authorization: Bearer KEY` (default: $LOUPE_SERVE_API_KEY; none if unset).",
        )

    def handle(self, *args: object, **options: object) -> None:
        from training.serving import ServeConfig, serve

        location, name = model_to_serve(str(options["artifact"]))
        try:
            config = ServeConfig(
                host=options["host"],
                port=options["port"],
                model_name=options["served_model_name"] or name,
                api_key=options["api_key"],
                max_batch=options["max_batch"],
                batch_wait_ms=options["batch_wait_ms"],
                device=options["device"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        if config.host not in LOOPBACK and not config.api_key:
            self.stderr.write(
                f"Warning: serving on {config.host} without an API key: anyone who can reach it can use it."
            )

        stop = threading.Event()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signal_number, lambda *_: stop.set())
        try:
            server = serve(model_path=location, config=config, log=lambda line: self.stderr.write(line))
        except (OSError, ValueError) as error:
            raise CommandError(f"Cannot serve {name}: {error}") from error
        self.stdout.write(f"Serving {config.model_name} at {server.url}/v1 (stop with Ctrl-C or SIGTERM)")
        self.stdout.flush()
        try:
            while not stop.wait(0.5):  # a timed wait, so the signal handler gets to run
                pass
        finally:
            server.stop()
        self.stdout.write("Stopped.")
