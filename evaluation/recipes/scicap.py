"""SciCap: people rate captions → an `sft` snapshot whose rows carry `[GOOD]` or `[BAD]` (split at the median
rating, SciCap's rule) → SFT with control tokens on the tiny VLM → captions of held-out figures written with and
without the `[GOOD]` prefix → caption metrics (coco-caption ROUGE-L, BLEU, METEOR) of each against the truth.

There is no SciCap data in `../shared/data/`, so the "figures" are shapes-world scenes, each with its true
caption and one with a planted error as the captions to rate; the simulated raters, who see the scene, rate
through the annotation API: the true caption good or excellent, the wrong one bad or poor (drawn by the seed).
The held-out figures' true captions are the references.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotation.models import Item
from annotation.services import SnapshotFilter, items_import, project_create, snapshot_create
from annotation.shapes_world import shapes_world_items
from evaluation.recipes import common, shapes
from training.services import training_run_create

RATING_LEVELS = ["bad", "poor", "fair", "good", "excellent"]
CAPTION_PROMPT = "Write a caption for this figure."


@dataclass
class SciCapSettings:
    """What the SciCap recipe does at each size."""

    n_figures: int = field(default=8, metadata={"help": "Figures whose two captions are rated."})
    raters: int = field(default=2, metadata={"help": "Simulated raters (each rates every caption)."})
    max_steps: int = field(default=2, metadata={"help": "SFT steps."})
    n_eval_figures: int = field(default=4, metadata={"help": "Held-out figures captioned for the metrics."})
    max_new_tokens: int = field(default=32, metadata={"help": "Longest caption written."})

    @classmethod
    def of(cls, config: common.RecipeConfig) -> SciCapSettings:
        return cls() if config.small else cls(n_figures=120, raters=3, max_steps=80, n_eval_figures=50,
                                              max_new_tokens=48)  # fmt: skip


def captions_write(*, model_dir: str, images: list[Path], prefix: str, max_new_tokens: int, out: Path) -> Path:
    """Greedy captions of `images` by the model at `model_dir`, its answers started with `prefix`, as JSON lines
    (the captions benchmark's predictions file). Worker side: loads the model with torch."""
    from PIL import Image

    from training.core import has_chat_template
    from training.generation import load_policy, sample_answers

    policy, processing_class = load_policy(model_dir)
    pictures = []
    for path in images:
        with Image.open(path) as image:
            pictures.append([image.convert("RGB")])
    answers = sample_answers(
        policy, processing_class, prompts=[CAPTION_PROMPT] * len(images), images=pictures,
        max_new_tokens=max_new_tokens, answer_prefix=prefix, use_template=has_chat_template(processing_class),
        do_sample=False,
    )  # fmt: skip
    # An empty caption would be no line at all to the metrics' reader; it scores as what it is, nothing useful.
    lines = [json.dumps({"caption": a[0].strip() or "(empty)"}) for a in answers]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def run(context: common.RecipeContext) -> None:
    settings_ = SciCapSettings.of(context.config)
    seed = context.config.seed
    raters = [common.annotator_user(context, i) for i in range(settings_.raters)]
    project = project_create(
        slug=common.unique_slug(f"scicap-{context.tag}"), kind="rating", created_by=context.owner,
        name="SciCap recipe: rate figure captions", rating_levels=RATING_LEVELS,
        annotators=[user.username for user in raters], overlap=settings_.raters,
    )  # fmt: skip
    source = shapes.shapes_import_write(context.out_dir / "figures", n=settings_.n_figures, seed=4000 + seed)
    records = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    for record in records:
        record["prompt"] = CAPTION_PROMPT
    source.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    imported = items_import(project=project, path=source, images=source.parent)
    context.stage("import figures", project=project.slug, figures=imported.created)

    rng = random.Random(seed)

    def rate(task: dict[str, Any]) -> dict[str, Any]:
        item = Item.objects.get(pk=task["item_id"])  # the rater looks at the figure: its ground truth
        caption = next(r["text"] for r in task["responses"] if r["id"] == task["response_id"])
        true = caption.split() == shapes.truth_of(item.meta).split()
        return {"level": rng.choice([3, 4]) if true else rng.choice([0, 1])}

    ratings = sum(
        common.annotate_all(client=common.api_client(user), slug=project.slug, answer=rate, who=user.username)
        for user in raters
    )
    context.stage("ratings through the annotation API", ratings=ratings)

    snapshot = snapshot_create(
        project=project, created_by=context.owner, snapshot_filter=SnapshotFilter(kind="sft", test_fraction=0.0,
                                                                                  seed=seed),
    )  # fmt: skip
    rows = [json.loads(line) for line in Path(snapshot.path).read_text(encoding="utf-8").splitlines() if line]
    labels = [row.get("label") for row in rows]
    context.stage("sft snapshot", snapshot=snapshot.pk, rows=snapshot.n_rows, good=labels.count("good"),
                  bad=labels.count("bad"), stats=snapshot.stats)  # fmt: skip

    base = common.base_artifact(context, kind="vlm")
    training = training_run_create(
        method="sft", snapshot=snapshot, base_artifact=base, created_by=context.owner,
        config={"max_steps": settings_.max_steps, "save_steps": settings_.max_steps, "seed": seed,
                "control_tokens": True},
    )  # fmt: skip
    model = common.training_run_to_end(context, training)
    context.stage("control-token SFT", **common.training_facts(training.pk))

    held_out = context.out_dir / "held-out"
    figures = shapes_world_items(n=settings_.n_eval_figures, seed=5000 + seed, image_dir=held_out)
    references = held_out / "references.jsonl"
    references.write_text(
        "".join(json.dumps({"references": [f["responses"][0]["text"]]}) + "\n" for f in figures), encoding="utf-8"
    )
    good_token = training.config["good_token"]
    for label, prefix in ((f"{good_token} prefix", f"{good_token} "), ("no prefix", "")):
        predictions = captions_write(
            model_dir=model.location, images=[held_out / f["image"] for f in figures], prefix=prefix,
            max_new_tokens=settings_.max_new_tokens,
            out=held_out / f"predictions-{'good' if prefix else 'plain'}.jsonl",
        )  # fmt: skip
        facts = common.benchmark(
            context, name="captions", config={"predictions": str(predictions), "references": str(references)},
            model=model,
        )  # fmt: skip
        common.benchmark_row(context, facts, label=label)
