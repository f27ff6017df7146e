"""`manage.py recipe NAME [--size small|full] [--seed S] [--out DIR] [--quiet]`: run one of issue 14's recipes
here, printing each stage as it finishes, and print the report's path (`report.json`, `report.md` beside it)."""

from dataclasses import fields

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluation.recipes import RECIPES, RecipeConfig, RecipeFailed, recipe_config_build, recipe_run
from loupe.errors import ApplicationError


def _help(name: str) -> str:
    return next(f.metadata["help"] for f in fields(RecipeConfig) if f.name == name)


class Command(BaseCommand):
    help = "Run a seed recipe end to end through Loupe's own paths and write its report. " + "; ".join(
        f"{name}: {what}" for name, (_, what) in RECIPES.items()
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", choices=list(RECIPES), help="which recipe")
        parser.add_argument("--size", default="small", choices=["small", "full"], help=_help("size"))
        parser.add_argument("--seed", type=int, default=0, help=_help("seed"))
        parser.add_argument("--out", default="", help=_help("out_dir"))
        parser.add_argument("--models-dir", default="", help=_help("models_dir"))
        parser.add_argument("--owner", default="", help=_help("owner"))
        parser.add_argument("--quiet", action="store_true", help="print only the report's path")

    def handle(self, *args: object, **options: object) -> None:
        try:
            config = recipe_config_build(
                size=options["size"], seed=options["seed"], out_dir=options["out"],
                models_dir=options["models_dir"], owner=options["owner"],
            )  # fmt: skip
        except ApplicationError as error:
            raise CommandError(error.message) from error

        def progress(line: str) -> None:
            if not options["quiet"]:
                self.stdout.write(line)
                self.stdout.flush()

        try:
            path, report = recipe_run(name=options["name"], config=config, progress=progress)
        except (RecipeFailed, ApplicationError) as error:
            raise CommandError(getattr(error, "message", str(error))) from error
        self.stdout.write(f"{report['recipe']} {report['status']} in {report['seconds']} s; report: {path}")
        self.stdout.write(f"table: {path.with_suffix('.md')}")
