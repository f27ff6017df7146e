"""`manage.py sample_items --kind KIND --out DIR [--n 20] [--seed 0] [--project SLUG]`

Sample items from the shapes world (`annotation.shapes_world`: synthetic scenes whose ground truth is known)
for a project of any kind, written as Loupe JSONL with the images beside it, ready for `import_items` or the
dashboard's import (with the PNGs zipped). With `--project` they are imported into that project at once and
`--kind` defaults to the project's.
"""

import json
import random
import zipfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation import services
from annotation.models import Project, ProjectKind
from annotation.shapes_world import scene_generate, scene_hallucinated_caption, shapes_world_items
from loupe.errors import ApplicationError

# A ranking task orders several answers; the true caption, the planted one and this many more with another
# planted error each (distinct texts: equal answers cannot be ranked).
RANKING_EXTRA_ANSWERS = 2


def sample_items(*, kind: str, n: int, seed: int, image_dir: Path) -> list[dict]:
    """`n` shapes-world items (Loupe JSONL dicts) for a project of `kind`; images written into `image_dir`.

    Every kind gets the true caption and one with a planted hallucination (`meta.hallucinated_spans` says
    where): a correction project corrects each answer (one task per answer, the true one is "no
    hallucination"), a pairwise project compares the two, a rating project rates each; a ranking project
    gets more wrong answers to order."""
    items = shapes_world_items(n=n, seed=seed, image_dir=image_dir)
    if kind != ProjectKind.RANKING:
        return items
    rng = random.Random(seed + 1)
    for item in items:
        scene = scene_generate(seed=item["meta"]["scene_seed"])
        texts = {response["text"] for response in item["responses"]}
        for _ in range(20 * RANKING_EXTRA_ANSWERS):
            if len(item["responses"]) >= 2 + RANKING_EXTRA_ANSWERS:
                break
            text, _spans = scene_hallucinated_caption(scene, rng=rng)
            if text not in texts:
                texts.add(text)
                item["responses"].append({"text": text, "model": "shapes-hallucinator"})
    return items


class Command(BaseCommand):
    help = "Write shapes-world sample items (Loupe JSONL + PNGs + images.zip) for a project of any kind."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kind", choices=ProjectKind.values, help="The project kind (default: --project's).")
        parser.add_argument("--out", type=Path, help="Folder for items.jsonl, the PNGs and images.zip.")
        parser.add_argument("--n", type=int, default=20, help="How many items (scenes); default 20.")
        parser.add_argument("--seed", type=int, default=0, help="Same seed, same items (and external ids).")
        parser.add_argument("--project", help="Import the items into this project as well.")

    def handle(self, *args: object, **options: object) -> None:
        project = None
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"--project: no project {options['project']!r}.")
        kind = options["kind"] or (project.kind if project else None)
        if kind is None:
            raise CommandError("--kind: give the project kind (or --project).")
        if project is not None and project.kind != kind:
            raise CommandError(f"--kind: {project.slug} is a {project.kind} project, not {kind}.")
        if not 1 <= options["n"] <= 10_000:
            raise CommandError("--n: from 1 to 10000 items.")
        if options["out"] is None:
            raise CommandError("--out: give a folder to write the items into.")
        out: Path = options["out"]
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out: {out} is a file, not a folder.")
        out.mkdir(parents=True, exist_ok=True)
        items = sample_items(kind=kind, n=options["n"], seed=options["seed"], image_dir=out)
        path = out / "items.jsonl"
        path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
        # The dashboard and the datasets page take images as one zip beside the JSONL.
        with zipfile.ZipFile(out / "images.zip", "w") as archive:
            for item in items:
                archive.write(out / item["image"], item["image"])
        self.stdout.write(f"Wrote {len(items)} {kind} items to {path} (images in {out}, and {out / 'images.zip'})")
        if project is None:
            return
        try:
            report = services.items_import(project=project, path=path, images=out)
        except ApplicationError as error:
            raise CommandError(f"Import failed, nothing was stored: {error.message}") from error
        self.stdout.write(f"Imported into {project.slug}: {report.created} new items ({report.unchanged} unchanged)")
