"""The five seed recipes of issue 14, each one module that orchestrates the product's own paths (projects,
imports, the annotation API, the AI labeler, snapshots, training runs, rounds runs, benchmark runs) and writes
a report (`report.json` and `report.md`) into its folder under `var/recipes/`.

`recipe_run` is what `manage.py recipe NAME`, the admin's *Recipe runs* and the tests call. It runs in the
calling process (the command's, or a worker's on the `training` queue for a `RecipeRun`): every step it starts
is queued as the API would queue it and then executed inline, as `training.rounds` does.
"""

from __future__ import annotations

import importlib
import traceback
from pathlib import Path
from typing import Any

from evaluation.recipes.common import RecipeConfig, RecipeFailed, context_open, recipe_config_build, report_write
from loupe.errors import ApplicationError

# Recipe name -> (module, one line on what it does).
RECIPES: dict[str, tuple[str, str]] = {
    "rlhf-v": ("evaluation.recipes.rlhf_v", "corrections of hallucinated segments → DDPO → Object HalBench, CHAIR"),
    "rlaif-v": ("evaluation.recipes.rlaif_v", "two rounds of sample → AI labeler → DPO → CHAIR, POPE per round"),
    "ha-dpo": ("evaluation.recipes.ha_dpo", "the labeler's rewrites as chosen → LoRA DPO → POPE (3 settings), SHR"),
    "humor": ("evaluation.recipes.humor", "caption-contest ratings → reward model, DPO, best-of-N → humor win-rate"),
    "scicap": ("evaluation.recipes.scicap", "caption ratings → [GOOD]/[BAD] SFT → ROUGE-L/BLEU/METEOR ± [GOOD]"),
    "hallucination": (
        "evaluation.recipes.hallucination",
        "the VLM's own answers → corrections, pairwise judgments, AI labeler → DDPO/DPO → CHAIR, POPE per model",
    ),
}


def recipe_names() -> list[str]:
    return list(RECIPES)


def recipe_check(*, name: str) -> str:
    if name not in RECIPES:
        raise ApplicationError(f"Unknown recipe {name!r}; choose one of {', '.join(RECIPES)}.", {"field": "name"})
    return name


def recipe_run(*, name: str, config: RecipeConfig, progress: Any = print) -> tuple[Path, dict[str, Any]]:
    """Run recipe `name` to its end; returns the report's path and the report. A stage that fails ends the
    recipe with the report written (status "failed", the cause in `error`) and RecipeFailed raised."""
    import json

    recipe_check(name=name)
    module = importlib.import_module(RECIPES[name][0])
    context = context_open(name=name, config=config, progress=progress)
    progress(f"[{name}] report folder: {context.out_dir}")
    try:
        module.run(context)
    except Exception as error:  # noqa: BLE001 - every failure is written into the report, then raised
        cause = error.message if isinstance(error, ApplicationError) else str(error)
        if not isinstance(error, (RecipeFailed, ApplicationError)):
            cause = traceback.format_exc()
        path = report_write(context, status="failed", error=cause)
        raise RecipeFailed(f"recipe {name} failed (report: {path}): {cause[-1500:]}") from error
    path = report_write(context, status="succeeded")
    return path, json.loads(path.read_text(encoding="utf-8"))


__all__ = [
    "RECIPES",
    "RecipeConfig",
    "RecipeFailed",
    "recipe_check",
    "recipe_config_build",
    "recipe_names",
    "recipe_run",
]
