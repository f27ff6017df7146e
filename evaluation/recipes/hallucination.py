"""The hallucination experiment: does feedback collected in Loupe lower a VLM's hallucination?

One seed of it, through the product's own paths (`bench/prove_loop.py` runs it over several seeds and writes
the table and plot):

1. the base: the tiny VLM with eyes (`training.shapes_vision`: tower and projector pre-trained on the shapes
   world, as LLaVA starts from CLIP and an aligned projector), then an SFT warm start through a pairwise
   project (a judge prefers each scene's true caption) with the tower and projector frozen: a model that
   describes scenes and still gets objects, colours, places and counts wrong;
2. its own answers (greedy) on new scenes imported into a correction project; simulated annotators who see
   each scene's ground truth correct the wrong segments through the annotation API (RLHF-V) → snapshot →
   DDPO, and DPO on the same pairs;
3. two sampled answers per new scene imported into a pairwise project; a simulated judge prefers the one with
   fewer errors through the API (ties skipped) → snapshot → DPO;
4. when a labeler is given (`labeler`), a rounds run of two RLAIF-V rounds (sample → AI labeler → DPO);
5. CHAIR and POPE (three settings) on held-out scenes for every model.

Every preference run adds a language-model loss on the chosen answers (`sft_weight`, HA-DPO's auxiliary SFT
term): without it DPO and DDPO on these pairs raised CHAIR_i instead (the tiny model lowers the likelihood of
both answers and drifts to answers neither holds; see the README's table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from annotation.models import Item
from annotation.services import SnapshotFilter, items_import, project_create, snapshot_create
from evaluation.recipes import common, shapes
from training.services import training_run_create

FROZEN = {"freeze_vision": "tower_and_projector"}  # the language model learns; the eyes stay as pre-trained


@dataclass
class HallucinationSettings:
    """What the hallucination experiment does at each size."""

    sft_items: int = field(default=1000, metadata={"help": "Scenes of the SFT warm start."})
    sft_steps: int = field(default=600, metadata={"help": "SFT warm-start steps (batch 16)."})
    feedback_items: int = field(default=300, metadata={"help": "New scenes whose answers get feedback."})
    train_steps: int = field(default=150, metadata={"help": "Steps of each preference run (batch 8)."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate of the preference runs."})
    sft_weight: float = field(default=1.0, metadata={"help": "Chosen-answer language-model loss weight."})
    n_eval_images: int = field(default=300, metadata={"help": "Held-out scenes of CHAIR and POPE."})
    pope: bool = field(default=False, metadata={"help": "Run POPE (three settings) on every model too."})
    ablation: bool = field(
        default=False, metadata={"help": "Also train DPO without the SFT term (sft_weight 0) on each human snapshot."}
    )
    rounds: bool = field(default=False, metadata={"help": "Run two RLAIF-V rounds with the yes/no labeler."})

    @classmethod
    def of(cls, config: common.RecipeConfig) -> HallucinationSettings:
        if config.small:
            return cls()
        return cls(feedback_items=600, n_eval_images=500, pope=True, rounds=True, ablation=True)


def run(context: common.RecipeContext) -> None:
    settings_ = HallucinationSettings.of(context.config)
    seed = context.config.seed
    base = common.sighted_base(context)
    sft = common.sft_warm_start(
        context, base=base, n_items=settings_.sft_items, max_steps=settings_.sft_steps,
        train_config={**FROZEN, "learning_rate": 1e-3, "per_device_train_batch_size": 16},
    )  # fmt: skip
    models: list[dict[str, Any]] = [{"label": "SFT", "feedback": "none", "answers": 0, "model": sft}]
    train = {
        **FROZEN, "max_steps": settings_.train_steps, "save_steps": settings_.train_steps, "seed": seed,
        "learning_rate": settings_.learning_rate, "per_device_train_batch_size": 8, "sft_weight": settings_.sft_weight,
    }  # fmt: skip

    def train_on(snapshot: Any, *, method: str, label: str, feedback: str, answers: int, **extra: Any) -> None:
        run_ = training_run_create(
            method=method, snapshot=snapshot, base_artifact=sft, created_by=context.owner, config={**train, **extra}
        )
        model = common.training_run_to_end(context, run_)
        context.stage(label, **common.training_facts(run_.pk))
        models.append({"label": label, "feedback": feedback, "answers": answers, "model": model})

    corrections, snapshot = _corrections(context, sft=sft, n=settings_.feedback_items)
    feedback = {"feedback": "human corrections (RLHF-V)", "answers": corrections}
    train_on(snapshot, method="ddpo", label="DDPO (corrections)", **feedback)
    train_on(snapshot, method="dpo", label="DPO (corrections)", **feedback)
    if settings_.ablation:
        train_on(snapshot, method="dpo", label="DPO (corrections), no SFT term", sft_weight=0.0, **feedback)

    judged, snapshot = _pairwise(context, sft=sft, n=settings_.feedback_items)
    feedback = {"feedback": "human pairwise judgments", "answers": 2 * judged}
    train_on(snapshot, method="dpo", label="DPO (pairwise)", **feedback)
    if settings_.ablation:
        train_on(snapshot, method="dpo", label="DPO (pairwise), no SFT term", sft_weight=0.0, **feedback)

    if settings_.rounds:
        models += _rlaif_v_rounds(context, sft=sft, train=train, n=settings_.feedback_items)

    # Held-out scenes, the same for every model compared; POPE asks about fewer (five questions a scene).
    configs = {"chair": {"shapes": {"n_images": settings_.n_eval_images, "seed": 10_000 + seed}}}
    if settings_.pope:
        configs["pope"] = {"shapes": {"n_images": min(200, settings_.n_eval_images), "seed": 10_000 + seed}}
    context.results["models"] = []
    for entry in models:
        row = {k: v for k, v in entry.items() if k != "model"} | {"model": entry["model"].name}
        for name, config in configs.items():
            facts = common.benchmark(context, name=name, config=config, model=entry["model"])
            common.benchmark_row(context, facts, label=entry["label"])
            row[name] = facts["summary"]
        context.results["models"].append(row)


def _answer_of(task: dict[str, Any]) -> str:
    return next(r["text"] for r in task["responses"] if r["id"] == task["response_id"])


def _corrections(context: common.RecipeContext, *, sft: Any, n: int) -> tuple[int, Any]:
    """The SFT model's greedy answers on `n` new scenes, corrected through the API; (answers, snapshot)."""
    seed = context.config.seed
    project = project_create(
        slug=common.unique_slug(f"hallucination-corrections-{context.tag}"), kind="correction",
        created_by=context.owner, name="Hallucination experiment: correct the model's answers",
        annotators=[common.annotator_user(context, i).username for i in range(2)],
    )  # fmt: skip
    source = shapes.model_answers_import_write(
        context.out_dir / "corrections", model_dir=sft.location, n=n, seed=1000 + seed
    )
    imported = items_import(project=project, path=source, images=source.parent)
    types = list(project.hallucination_types)

    def correct(task: dict[str, Any]) -> dict[str, Any]:
        item = Item.objects.get(pk=task["item_id"])  # the annotator looks at the scene: its ground truth
        return {"segments": shapes.segments_against_truth(_answer_of(task), shapes.truth_of(item.meta), types=types)}

    corrected = sum(
        common.annotate_all(client=common.api_client(user), slug=project.slug, answer=correct, who=user.username)
        for user in (common.annotator_user(context, i) for i in range(2))
    )
    snapshot = snapshot_create(
        project=project, created_by=context.owner, snapshot_filter=SnapshotFilter(test_fraction=0.0, seed=seed)
    )
    context.stage("corrections through the annotation API", project=project.slug, items=imported.created,
                  answers=corrected, pairs=snapshot.n_rows)  # fmt: skip
    return corrected, snapshot


def _pairwise(context: common.RecipeContext, *, sft: Any, n: int) -> tuple[int, Any]:
    """Two sampled answers of the SFT model on `n` new scenes, judged through the API (fewer errors against the
    scene's ground truth wins; a tie is skipped); (judgments, snapshot)."""
    seed = context.config.seed
    judge = common.annotator_user(context, 0)
    project = project_create(
        slug=common.unique_slug(f"hallucination-pairwise-{context.tag}"), kind="pairwise",
        created_by=context.owner, name="Hallucination experiment: which answer is right?",
        annotators=[judge.username],
    )  # fmt: skip
    source = shapes.model_answers_import_write(
        context.out_dir / "pairwise", model_dir=sft.location, n=n, seed=2000 + seed, samples=2, temperature=1.0
    )
    items_import(project=project, path=source, images=source.parent)
    chosen_errors: list[int] = []  # what the judge saw: errors left in the answer it preferred

    def prefer_fewer_errors(task: dict[str, Any]) -> dict[str, Any] | None:
        truth = shapes.truth_of(Item.objects.get(pk=task["item_id"]).meta)
        first, second = (shapes.errors_against_truth(r["text"], truth) for r in task["responses"][:2])
        if first == second:
            return None
        chosen_errors.append(min(first, second))
        return {"choice": "a" if first < second else "b", "strength": 2}

    judged = common.annotate_all(
        client=common.api_client(judge), slug=project.slug, answer=prefer_fewer_errors, who=judge.username
    )
    snapshot = snapshot_create(
        project=project, created_by=context.owner, snapshot_filter=SnapshotFilter(test_fraction=0.0, seed=seed)
    )
    context.stage("pairwise judgments through the annotation API", project=project.slug, judgments=judged,
                  pairs=snapshot.n_rows, chosen_with_errors=sum(1 for e in chosen_errors if e))  # fmt: skip
    return judged, snapshot


def _rlaif_v_rounds(context: common.RecipeContext, *, sft: Any, train: dict[str, Any], n: int) -> list[dict]:
    """Two RLAIF-V rounds from the SFT model with the yes/no labeler (sample 4 → label → DPO); one model row
    per round."""
    from annotation.models import JobStatus
    from training.models import Round
    from training.rounds import rounds_run_execute, rounds_run_start

    seed = context.config.seed
    labeler = common.yes_no_labeler_folder(context)
    project = project_create(
        slug=common.unique_slug(f"hallucination-rlaif-v-{context.tag}"), kind="pairwise",
        created_by=context.owner, name="Hallucination experiment: prompts the RLAIF-V rounds sample",
    )  # fmt: skip
    source = shapes.shapes_import_write(context.out_dir / "rounds", n=n // 2, seed=3000 + seed)
    items_import(project=project, path=source, images=source.parent)
    rounds_run = rounds_run_start(
        project=project, base_model=sft.name, n_rounds=2, created_by=context.owner,
        config={
            "labeler_model": str(labeler), "labeler_config": {"batch_size": 32}, "samples_per_prompt": 4,
            "max_new_tokens": 64, "balance_ai_lengths": False, "seed": seed, "train_config": dict(train),
        },
    )  # fmt: skip
    rounds_run_execute(rounds_run_id=rounds_run.pk)
    rounds_run.refresh_from_db()
    if rounds_run.status != JobStatus.SUCCEEDED:
        raise common.RecipeFailed(f"rounds run {rounds_run.pk} ended {rounds_run.status}:\n{rounds_run.log[-3000:]}")
    rows = []
    for round_ in Round.objects.filter(rounds_run=rounds_run).select_related("model").order_by("number"):
        context.stage(f"RLAIF-V round {round_.number}", labeler_job=round_.labeler_job_id,
                      **common.training_facts(round_.training_run_id), figures=round_.figures)  # fmt: skip
        rows.append({"label": f"RLAIF-V round {round_.number}", "feedback": "AI labeler (RLAIF-V)",
                     "answers": round_.figures.get("answers", 0), "model": round_.model})  # fmt: skip
    return rows
