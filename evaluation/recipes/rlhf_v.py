"""RLHF-V: a model's answers → a correction project → annotators mark the wrong segments → snapshot → DDPO →
Object HalBench and CHAIR on held-out scenes, for the base model and the trained one.

The answers to correct are the shapes world's captions with a planted error (model "shapes-hallucinator"), not
the tiny VLM's own: an untrained tiny VLM writes token soup, in which no span is "the wrong object" and a
correction would be a rewrite of the whole answer, so RLHF-V's dense, segment-level signal would not be tested.
The simulated annotators see each scene's ground truth and mark, through the annotation API, every run of words
that differs from the true caption with the true words as replacement (`shapes.segments_against_truth`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from annotation.models import Item
from annotation.services import SnapshotFilter, items_import, project_create, snapshot_create
from evaluation.recipes import common, shapes
from training.services import training_run_create


@dataclass
class RLHFVSettings:
    """What the RLHF-V recipe does at each size (help text: `manage.py recipe --help`)."""

    n_items: int = field(default=8, metadata={"help": "Answers to correct (one scene each)."})
    annotators: int = field(default=2, metadata={"help": "Simulated annotators sharing the tasks."})
    max_steps: int = field(default=2, metadata={"help": "DDPO optimizer steps."})
    n_eval_images: int = field(default=4, metadata={"help": "Held-out scenes of each benchmark."})
    sft_items: int = field(default=0, metadata={"help": "Scenes of the SFT warm start (0: none, DDPO on the base)."})
    sft_steps: int = field(default=0, metadata={"help": "SFT warm-start steps."})

    @classmethod
    def of(cls, config: common.RecipeConfig) -> RLHFVSettings:
        if config.small:
            return cls()
        return cls(n_items=120, annotators=3, max_steps=60, n_eval_images=50, sft_items=200, sft_steps=300)


def run(context: common.RecipeContext) -> None:
    settings_ = RLHFVSettings.of(context.config)
    seed = context.config.seed
    base = common.base_artifact(context, kind="vlm")
    if settings_.sft_steps:
        base = common.sft_warm_start(context, base=base, n_items=settings_.sft_items, max_steps=settings_.sft_steps)
    project = project_create(
        slug=common.unique_slug(f"rlhf-v-{context.tag}"), kind="correction", created_by=context.owner,
        name="RLHF-V recipe: correct the model's captions",
        annotators=[common.annotator_user(context, i).username for i in range(settings_.annotators)],
    )  # fmt: skip
    source = shapes.shapes_import_write(
        context.out_dir / "items", n=settings_.n_items, seed=1000 + seed, answers="hallucinated"
    )
    imported = items_import(project=project, path=source, images=source.parent)
    context.stage("import", project=project.slug, items=imported.created)

    types = list(project.hallucination_types)

    def correct(task: dict[str, Any]) -> dict[str, Any]:
        item = Item.objects.get(pk=task["item_id"])  # the annotator looks at the scene: its ground truth
        answer = next(r["text"] for r in task["responses"] if r["id"] == task["response_id"])
        return {"segments": shapes.segments_against_truth(answer, shapes.truth_of(item.meta), types=types)}

    corrected = sum(
        common.annotate_all(client=common.api_client(user), slug=project.slug, answer=correct, who=user.username)
        for user in (common.annotator_user(context, i) for i in range(settings_.annotators))
    )
    context.stage("corrections through the annotation API", project=project.slug, corrections=corrected)

    snapshot = snapshot_create(
        project=project, created_by=context.owner,
        snapshot_filter=SnapshotFilter(test_fraction=0.0, seed=seed),
    )  # fmt: skip
    context.stage("snapshot", snapshot=snapshot.pk, pairs=snapshot.n_rows, train=snapshot.n_train)

    training = training_run_create(
        method="ddpo", snapshot=snapshot, base_artifact=base, created_by=context.owner,
        config={"max_steps": settings_.max_steps, "save_steps": max(1, settings_.max_steps), "seed": seed},
    )  # fmt: skip
    model = common.training_run_to_end(context, training)
    context.stage("DDPO", **common.training_facts(training.pk))

    shapes_config = {"shapes": {"n_images": settings_.n_eval_images, "seed": seed}}
    for label, artifact in (("SFT" if settings_.sft_steps else "base", base), ("DDPO", model)):
        for name in ("object_halbench", "chair"):
            facts = common.benchmark(context, name=name, config=dict(shapes_config), model=artifact)
            common.benchmark_row(context, facts, label=label)
