"""HA-DPO: the AI labeler's rewrites of a model's answers (the claims it rejected, rewritten: `AIFeedback.rewrite`)
as chosen over the original → DPO with LoRA adapters on the VLM → the adapter merged into a full model →
POPE (random, popular, adversarial) and SHR on held-out scenes, for the base model and the trained one.

The answers are the shapes world's captions with a planted error (as in RLHF-V); the labeler is the tiny VLM
(local backend, the only labeler reachable offline; untrained even at --size full, where the policy starts from
an SFT warm start, because it rejects claims and so rewrites), whose rewrites of an untrained model are not good
captions: the recipe tests the path from labeler to trained model, not the labeler's writing. The snapshot
keeps the AI pairs only, with `ai_rewrite_pairs` on: the rewrite pairs with their changed spans.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from annotation.models import AIFeedback, JobStatus
from annotation.services import SnapshotFilter, items_import, project_create, snapshot_create
from annotation.services.labeler import labeler_job_execute, labeler_job_start
from evaluation.recipes import common, shapes
from training.models import ModelArtifact
from training.services import model_artifact_merge_execute, training_run_create


@dataclass
class HADPOSettings:
    """What the HA-DPO recipe does at each size."""

    n_items: int = field(default=6, metadata={"help": "Answers the labeler checks and rewrites."})
    max_steps: int = field(default=2, metadata={"help": "LoRA DPO steps."})
    n_eval_images: int = field(default=4, metadata={"help": "Held-out scenes of POPE and SHR."})
    sft_items: int = field(default=0, metadata={"help": "Scenes of the SFT warm start (0: none, train the base)."})
    sft_steps: int = field(default=0, metadata={"help": "SFT warm-start steps."})

    @classmethod
    def of(cls, config: common.RecipeConfig) -> HADPOSettings:
        return cls() if config.small else cls(n_items=100, max_steps=60, n_eval_images=50, sft_items=200, sft_steps=300)


def run(context: common.RecipeContext) -> None:
    settings_ = HADPOSettings.of(context.config)
    seed = context.config.seed
    base = common.base_artifact(context, kind="vlm")
    if settings_.sft_steps:
        base = common.sft_warm_start(context, base=base, n_items=settings_.sft_items, max_steps=settings_.sft_steps)
    base_label = "SFT" if settings_.sft_steps else "base"
    project = project_create(
        slug=common.unique_slug(f"ha-dpo-{context.tag}"), kind="correction", created_by=context.owner,
        name="HA-DPO recipe: the labeler rewrites the model's captions",
    )  # fmt: skip
    source = shapes.shapes_import_write(
        context.out_dir / "items", n=settings_.n_items, seed=3000 + seed, answers="hallucinated"
    )
    imported = items_import(project=project, path=source, images=source.parent)
    context.stage("import", project=project.slug, items=imported.created)

    job = labeler_job_start(
        project=project, backend="local", model=str(common.tiny_model(context, kind="vlm")), rewrite=True,
        config={"batch_size": 32, "max_new_tokens": 48},
        created_by=context.owner,
    )  # fmt: skip
    context.progress(f"[{context.name}] labeler job {job.pk} (with rewrites) ...")
    labeler_job_execute(job_id=job.pk)
    job.refresh_from_db()
    if job.status != JobStatus.SUCCEEDED:
        raise common.RecipeFailed(f"labeler job {job.pk} ended {job.status}:\n{job.log[-2000:]}")
    feedback = AIFeedback.objects.filter(response__item__project=project)
    rewrites = feedback.exclude(rewrite={})
    context.stage("AI labeler with rewrites", labeler_job=job.pk, status=job.status, labelled=feedback.count(),
                  rewrites=rewrites.count())  # fmt: skip

    snapshot = snapshot_create(
        project=project, created_by=context.owner,
        snapshot_filter=SnapshotFilter(sources=("ai",), ai_rewrite_pairs=True, test_fraction=0.0, seed=seed),
    )  # fmt: skip
    context.stage("snapshot of rewrite pairs", snapshot=snapshot.pk, pairs=snapshot.n_rows, stats=snapshot.stats)

    training = training_run_create(
        method="dpo", snapshot=snapshot, base_artifact=base, created_by=context.owner,
        config={"max_steps": settings_.max_steps, "save_steps": settings_.max_steps, "seed": seed,
                "use_lora": True, "merge_lora": False},
    )  # fmt: skip
    adapter = common.training_run_to_end(context, training)
    context.stage("LoRA DPO", **common.training_facts(training.pk), adapter=adapter.is_adapter)
    # Merged here, as `manage.py merge_adapter` merges (the /models/ page queues the same on a worker).
    merged = model_artifact_merge_execute(artifact_id=adapter.pk)
    context.stage("merge", model=merged.name, base=merged.base.name if merged.base else None)

    shapes_config = {"n_images": settings_.n_eval_images, "seed": seed + 1}
    for label, artifact in ((base_label, base), ("LoRA DPO", merged)):
        pope = common.benchmark(context, name="pope", config={"shapes": {**shapes_config}}, model=artifact)
        common.benchmark_row(context, pope, label=label)
        shr = common.benchmark(context, name="shr", config={"shapes": {**shapes_config}}, model=artifact)
        common.benchmark_row(context, shr, label=label)
    context.results["models"] = list(
        ModelArtifact.objects.filter(pk__in=[base.pk, adapter.pk, merged.pk]).values("name", "base__name", "is_adapter")
    )
