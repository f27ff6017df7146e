"""`manage.py make_tiny_model --kind lm|vlm|reward [--variant tiny|realistic] --out DIR`: a tiny random model
built offline (``realistic``: bf16, no pad token, dropout, 576 image tokens; see ``training.tiny_models``)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Write a tiny model (random weights from a config, locally trained tokenizer) that from_pretrained loads."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kind", required=True, choices=["lm", "vlm", "reward"])
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--variant",
            choices=["tiny", "realistic"],
            default="tiny",
            help="realistic: saved in bf16, no pad token, dropout on, 576 image tokens (like Llama-2 / LLaVA-1.5)",
        )

    def handle(self, *args: object, **options: object) -> None:
        from training.tiny_models import make_tiny_model  # torch is imported only in this CLI process

        path = make_tiny_model(
            kind=options["kind"], out_dir=options["out"], seed=options["seed"], variant=options["variant"]
        )
        self.stdout.write(f"Wrote a {options['variant']} {options['kind']} model to {path}")
