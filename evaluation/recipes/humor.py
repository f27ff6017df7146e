"""Humor: a caption-contest rating project from the real New Yorker contest tables in `../shared/data/` (the
crowd's funny / somewhat funny / unfunny counts per caption) → a pairs snapshot (the margin rule) → a reward
model, DPO and best-of-N (the reward model choosing among N samples) on the tiny LM → the humor benchmark:
each model's caption against each contest's top human caption, a judge asked in both orders, and
Bradley-Terry ratings.

The judge is the tiny LM through the labeler's local backend (the humor benchmark's judges are the labeler's
backends; no judge model is reachable offline); untrained, it names neither caption, so its verdicts are ties
(the report counts them as `unparsed`). The contest tables come without their cartoons, so the recipe draws a
placeholder cartoon for each (the import needs one to show annotators). Both contests share the import's
prompt, so best-of-N (one answer per distinct prompt) writes one caption that both contests get.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from PIL import Image, ImageDraw

from annotation.services import SnapshotFilter, items_import, project_create, snapshot_create
from evaluation.recipes import common
from training.services import BEST_OF_N_FILE, training_run_create

CONTEST_FILES = ("660_summary_KLUCB.first2000.csv", "691_summary_KLUCB.first2000.csv")


@dataclass
class HumorSettings:
    """What the humor recipe does at each size."""

    captions_per_contest: int = field(default=24, metadata={"help": "Top captions of each contest table imported."})
    max_steps: int = field(default=2, metadata={"help": "Reward model and DPO steps."})
    n_samples: int = field(default=4, metadata={"help": "Best-of-N: captions sampled per prompt."})

    @classmethod
    def of(cls, config: common.RecipeConfig) -> HumorSettings:
        return cls() if config.small else cls(captions_per_contest=2000, max_steps=60, n_samples=16)


def contest_data_dir() -> Path:
    return Path(settings.BASE_DIR).parent / "shared" / "data" / "caption-contest"


def contest_table_write(source: Path, out: Path, *, rows: int) -> Path:
    """The table's header and first `rows` captions, unmodified, under the contest's own file name (its number
    names the item when a table has no contest column)."""
    with source.open(newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(records[: rows + 1])
    return out


def cartoon_draw(out: Path, *, contest: str) -> Path:
    """A placeholder cartoon (the tables' cartoons are not in the shared data)."""
    image = Image.new("RGB", (160, 120), (250, 248, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 70, 150, 110), outline=(40, 40, 40), width=2)  # a desk
    draw.ellipse((60, 20, 100, 60), outline=(40, 40, 40), width=2)  # someone behind it
    draw.text((8, 4), f"contest {contest}", fill=(40, 40, 40))
    image.save(out)
    return out


def run(context: common.RecipeContext) -> None:
    settings_ = HumorSettings.of(context.config)
    seed = context.config.seed
    project = project_create(
        slug=common.unique_slug(f"humor-{context.tag}"), kind="rating", created_by=context.owner,
        name="Humor recipe: New Yorker caption contests",
    )  # fmt: skip
    created = 0
    for name in CONTEST_FILES:
        contest = name.split("_", 1)[0]
        table = contest_table_write(
            contest_data_dir() / name, context.out_dir / "contests" / f"{contest}_summary_KLUCB.csv",
            rows=settings_.captions_per_contest,
        )  # fmt: skip
        cartoon = cartoon_draw(context.out_dir / "contests" / f"{contest}.png", contest=contest)
        report = items_import(project=project, path=table, import_format="caption-contest", image=cartoon)
        created += report.created
    context.stage("import caption contests", project=project.slug, contests=created)

    snapshot = snapshot_create(
        project=project, created_by=context.owner, snapshot_filter=SnapshotFilter(test_fraction=0.2, seed=seed)
    )
    context.stage("snapshot", snapshot=snapshot.pk, pairs=snapshot.n_rows, train=snapshot.n_train,
                  test=snapshot.n_test)  # fmt: skip

    steps = {"max_steps": settings_.max_steps, "save_steps": settings_.max_steps, "seed": seed}
    reward_base = common.base_artifact(context, kind="reward", model_kind="reward")
    reward_run = training_run_create(
        method="reward", snapshot=snapshot, base_artifact=reward_base, config=steps, created_by=context.owner
    )
    reward_model = common.training_run_to_end(context, reward_run)
    context.stage("reward model", **common.training_facts(reward_run.pk))

    lm = common.base_artifact(context, kind="lm")
    dpo_run = training_run_create(method="dpo", snapshot=snapshot, base_artifact=lm, config=steps,
                                  created_by=context.owner)  # fmt: skip
    dpo_model = common.training_run_to_end(context, dpo_run)
    context.stage("DPO", **common.training_facts(dpo_run.pk))

    best_run = training_run_create(
        method="best_of_n", snapshot=snapshot, base_artifact=dpo_model, created_by=context.owner,
        config={"n": settings_.n_samples, "reward_model": reward_model.location, "split": "all", "seed": seed},
    )  # fmt: skip
    common.training_run_to_end(context, best_run)
    best_rows = [
        json.loads(line)
        for line in (Path(best_run.output_dir) / "model" / BEST_OF_N_FILE).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    context.stage("best-of-N", training_run=best_run.pk, prompts=len(best_rows),
                  best=[row["completion"] for row in best_rows][:4])  # fmt: skip

    judge = {"kind": "local", "model": lm.location, "max_new_tokens": 4}
    common_config = {"contest_project": project.slug, "judge": judge, "top_k": 1, "n_bootstrap": 50}
    for label, artifact in (("tiny LM", lm), ("DPO", dpo_model)):
        facts = common.benchmark(context, name="humor", config={**common_config, "max_new_tokens": 24}, model=artifact)
        common.benchmark_row(context, facts, label=label)
    by_prompt = {row["prompt"] if isinstance(row["prompt"], str) else json.dumps(row["prompt"]): row["completion"]
                 for row in best_rows}  # fmt: skip
    captions = {
        item.external_id: by_prompt.get(item.prompt) or next(iter(by_prompt.values())) for item in project.items.all()
    }
    captions_file = context.out_dir / "best_of_n_captions.json"
    captions_file.write_text(json.dumps(captions, indent=2), encoding="utf-8")
    facts = common.benchmark(
        context, name="humor", config={**common_config, "captions": str(captions_file)},
        model_path=f"best-of-{settings_.n_samples}-run-{best_run.pk}",
    )  # fmt: skip
    common.benchmark_row(context, facts, label="best-of-N")
