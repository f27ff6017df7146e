"""RLAIF-V: a `RoundsRun` of two rounds (the current model samples several answers per prompt → the AI labeler
scores them → a snapshot of its pairs → DPO), with CHAIR and POPE queued on each round's model by the rounds'
training config (`benchmarks`, queued by `training.services._finish` through
`evaluation.services.benchmark_runs_after_training`), and the same two benchmarks on the base model.

The labeler is the untrained tiny VLM (no labeler model is reachable offline); it rejects nearly every claim, so
its pairs prefer answers that make fewer claims. That tests the loop's plumbing, not the labeler. At --size full
the rounds start from an SFT warm start (`common.sft_warm_start`), as RLAIF-V starts from an instruction-tuned
model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from annotation.services import items_import, project_create
from evaluation.models import BenchmarkRun
from evaluation.recipes import common, shapes
from training.models import JobStatus, Round
from training.rounds import rounds_run_execute, rounds_run_start


@dataclass
class RLAIFVSettings:
    """What the RLAIF-V recipe does at each size."""

    n_prompts: int = field(default=4, metadata={"help": "Source prompts (scenes) each round samples."})
    samples_per_prompt: int = field(default=6, metadata={"help": "Answers sampled per prompt per round."})
    max_new_tokens: int = field(default=32, metadata={"help": "Longest sampled answer."})
    max_steps: int = field(default=2, metadata={"help": "DPO steps per round."})
    n_eval_images: int = field(default=4, metadata={"help": "Held-out scenes of CHAIR and POPE."})
    sft_items: int = field(default=0, metadata={"help": "Scenes of the SFT warm start (0: none, train the base)."})
    sft_steps: int = field(default=0, metadata={"help": "SFT warm-start steps."})

    @classmethod
    def of(cls, config: common.RecipeConfig) -> RLAIFVSettings:
        if config.small:
            return cls()
        return cls(n_prompts=40, samples_per_prompt=6, max_new_tokens=48, max_steps=40, n_eval_images=50,
                   sft_items=200, sft_steps=300)  # fmt: skip


N_ROUNDS = 2


def run(context: common.RecipeContext) -> None:
    settings_ = RLAIFVSettings.of(context.config)
    seed = context.config.seed
    base = common.base_artifact(context, kind="vlm")
    if settings_.sft_steps:
        base = common.sft_warm_start(context, base=base, n_items=settings_.sft_items, max_steps=settings_.sft_steps)
    base_label = "SFT" if settings_.sft_steps else "base"
    # The untrained tiny VLM labels (see the module docstring): an SFT model that writes one caption for every
    # scene scores every answer alike, and equal scores make no pair.
    labeler = str(common.tiny_model(context, kind="vlm"))
    project = project_create(
        slug=common.unique_slug(f"rlaif-v-{context.tag}"), kind="pairwise", created_by=context.owner,
        name="RLAIF-V recipe: prompts the rounds sample",
    )  # fmt: skip
    source = shapes.shapes_import_write(context.out_dir / "items", n=settings_.n_prompts, seed=2000 + seed)
    imported = items_import(project=project, path=source, images=source.parent)
    context.stage("import", project=project.slug, items=imported.created)

    eval_seed = seed + 1  # held-out scenes, the same for every model compared
    benchmarks = [
        {"benchmark": "chair", "config": {"shapes": {"n_images": settings_.n_eval_images, "seed": eval_seed}}},
        {"benchmark": "pope", "config": {"shapes": {"n_images": settings_.n_eval_images, "seed": eval_seed}}},
    ]
    rounds_run = rounds_run_start(
        project=project, base_model=base.name, n_rounds=N_ROUNDS, created_by=context.owner,
        config={
            "labeler_model": labeler, "labeler_config": {"batch_size": 32},
            "samples_per_prompt": settings_.samples_per_prompt, "max_new_tokens": settings_.max_new_tokens,
            "balance_ai_lengths": False, "seed": seed,
            "train_config": {"max_steps": settings_.max_steps, "save_steps": settings_.max_steps,
                             "per_device_train_batch_size": 2, "seed": seed, "benchmarks": benchmarks},
        },
    )  # fmt: skip
    context.progress(f"[{context.name}] rounds run {rounds_run.pk}: {N_ROUNDS} rounds ...")
    rounds_run_execute(rounds_run_id=rounds_run.pk)
    rounds_run.refresh_from_db()
    if rounds_run.status != JobStatus.SUCCEEDED:
        raise common.RecipeFailed(f"rounds run {rounds_run.pk} ended {rounds_run.status}:\n{rounds_run.log[-3000:]}")
    context.stage("rounds", rounds_run=rounds_run.pk, status=rounds_run.status, rounds=rounds_run.n_rounds)
    context.results["rounds"] = []

    for entry in benchmarks:
        facts = common.benchmark(context, name=entry["benchmark"], config=entry["config"], model=base)
        common.benchmark_row(context, facts, label=base_label)
    for round_ in Round.objects.filter(rounds_run=rounds_run).select_related("model").order_by("number"):
        context.stage(f"round {round_.number}", labeler_job=round_.labeler_job_id,
                      **common.training_facts(round_.training_run_id), figures=round_.figures)  # fmt: skip
        context.results["rounds"].append({"round": round_.number, "model": round_.model.name, **round_.figures})
        for facts in common.queued_benchmarks_of(context, round_.model):
            common.benchmark_row(context, facts, label=f"round {round_.number}")
    if not BenchmarkRun.objects.filter(model__produced_by__in=[r.training_run_id for r in
                                       Round.objects.filter(rounds_run=rounds_run)]).exists():  # fmt: skip
        raise common.RecipeFailed("the rounds' training runs queued no benchmark run")
