"""Issue 14's five recipes at `--size small`, each through the product's own paths: what a user checks after one
is the report (JSON and Markdown) and, behind it, each stage's rows -- the project and its annotations (made
through the annotation API), the snapshot and its pairs, the training runs that succeeded, the models they
registered with their lineage, and the benchmark runs that succeeded with their metrics. Whether hallucination
went down is not asserted here (the tiny models are untrained); the reports say what the numbers were.

The recipes also run through `manage.py recipe` (one of them here) and the admin (its add form and action)."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation.models import AIFeedback, Correction, DatasetSnapshot, JobStatus, Project, Rating
from evaluation.models import BenchmarkRun, RecipeRun
from evaluation.recipes import RecipeConfig, recipe_run
from evaluation.recipes.shapes import segments_against_truth, truth_of
from training.models import ModelArtifact, Round, RoundsRun, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """The tiny base models, built once for every recipe of this module."""
    return tmp_path_factory.mktemp("recipe-models")


def run_recipe(name: str, tmp_path: Path, models_dir: Path) -> tuple[Path, dict]:
    lines: list[str] = []
    config = RecipeConfig(size="small", seed=0, out_dir=str(tmp_path / name), models_dir=str(models_dir))
    path, report = recipe_run(name=name, config=config, progress=lines.append)
    assert path == tmp_path / name / "report.json" and path.is_file()
    assert json.loads(path.read_text()) == report and report["status"] == "succeeded"
    assert any(line.startswith(f"[{name}] report folder") for line in lines)
    return path, report


def stage(report: dict, name: str) -> dict:
    return next(s for s in report["stages"] if s["stage"] == name)


def succeeded_benchmarks(report: dict, *, labels: set[str], benchmarks: set[str]) -> list[BenchmarkRun]:
    """Every benchmark row of the report is a succeeded run with the report's metrics, and the table has a column
    per model label and a row per headline metric."""
    rows = report["results"]["benchmarks"]
    assert {row["label"] for row in rows} == labels and {row["benchmark"] for row in rows} == benchmarks
    runs = []
    for row in rows:
        run = BenchmarkRun.objects.get(pk=row["benchmark_run"])
        assert (run.status, run.benchmark, run.summary) == (JobStatus.SUCCEEDED, row["benchmark"], row["summary"])
        assert run.examples.exists()
        runs.append(run)
    return runs


def table_of(report_path: Path) -> str:
    table = report_path.with_suffix(".md").read_text()
    assert table.startswith("# Recipe ") and "succeeded" in table.splitlines()[0]
    return table


def trained(run_id: int, *, method: str, base: ModelArtifact) -> ModelArtifact:
    """A training run that succeeded, and the model it registered, whose lineage is `base`."""
    run = TrainingRun.objects.get(pk=run_id)
    assert (run.method, run.status, run.step) == (method, JobStatus.SUCCEEDED, run.max_steps)
    model = ModelArtifact.objects.get(produced_by=run, name=f"run-{run.pk}-{method}")
    assert model.base == base and model.snapshot_id == run.snapshot_id
    weights = "adapter_config.json" if model.is_adapter else "config.json"
    assert (Path(model.location) / weights).is_file()
    return model


def test_the_simulated_annotator_corrects_every_planted_error_to_the_truth(tmp_path):
    """Correcting by the scene's ground truth turns each planted error (colour, shape, an extra object and its
    count) into the true caption; a true caption gets no segment."""
    from annotation.models import DEFAULT_HALLUCINATION_TYPES
    from annotation.segments import correction_check
    from annotation.shapes_world import shapes_world_items

    items = shapes_world_items(n=60, seed=7, image_dir=tmp_path)
    types_seen = set()
    for item in items:
        truth, wrong = (r["text"] for r in item["responses"])
        assert truth_of(item["meta"]) == truth
        segments = segments_against_truth(wrong, truth, types=DEFAULT_HALLUCINATION_TYPES)
        corrected = correction_check(text=wrong, segments=segments, types=DEFAULT_HALLUCINATION_TYPES).corrected_text
        assert corrected.split() == truth.split(), (wrong, segments)
        types_seen |= {s["type"] for s in segments}
        assert segments_against_truth(truth, truth, types=DEFAULT_HALLUCINATION_TYPES) == []
    assert {"count", "object", "attribute"} <= types_seen


def test_the_full_sizes_sft_warm_start_learns_the_captions_annotators_preferred(tmp_path, models_dir):
    """At --size full the VLM recipes first teach the base to describe scenes: a judge prefers each true caption
    through the API, and an SFT run on that snapshot (lineage: the tiny VLM) learns the preferred captions."""
    from evaluation.recipes import common

    lines: list[str] = []
    config = RecipeConfig(out_dir=str(tmp_path / "warm"), models_dir=str(models_dir))
    context = common.context_open(name="rlhf-v", config=config, progress=lines.append)
    base = common.base_artifact(context, kind="vlm")
    model = common.sft_warm_start(context, base=base, n_items=4, max_steps=2)
    run = TrainingRun.objects.get(pk=model.produced_by_id)
    trained(run.pk, method="sft", base=base)
    rows = [json.loads(line) for line in Path(run.snapshot.path).read_text().splitlines()]
    assert len(rows) == 4 and all(r["chosen"] == truth_of(item.meta) for r in rows
                                  for item in run.snapshot.project.items.filter(external_id=r["item_key"]))  # fmt: skip
    assert context.stages[-1]["stage"] == "SFT warm start" and context.stages[-1]["judgments"] == 4


def test_rlhf_v_corrections_through_the_api_train_ddpo_and_benchmark_it(tmp_path, models_dir):
    path, report = run_recipe("rlhf-v", tmp_path, models_dir)
    project = Project.objects.get(slug=stage(report, "import")["project"])
    assert project.kind == "correction" and project.items.count() == 8
    corrections = Correction.objects.filter(item__project=project)
    assert corrections.count() == 8 == stage(report, "corrections through the annotation API")["corrections"]
    assert all(c.segments and c.corrected_text.split() == truth_of(c.item.meta).split() for c in corrections)
    snapshot = DatasetSnapshot.objects.get(pk=stage(report, "snapshot")["snapshot"])
    rows = [json.loads(line) for line in Path(snapshot.path).read_text().splitlines()]
    assert len(rows) == 8 and all(r["source"] == "correction" and r["rejected_spans"] for r in rows)
    assert {" ".join(r["chosen"].split()) for r in rows} == {truth_of(c.item.meta) for c in corrections}
    base = ModelArtifact.objects.get(name="recipe-tiny-vlm")
    model = trained(stage(report, "DDPO")["training_run"], method="ddpo", base=base)
    runs = succeeded_benchmarks(report, labels={"base", "DDPO"}, benchmarks={"object_halbench", "chair"})
    assert {run.model for run in runs} == {base, model}
    assert all("CHAIR_s" in run.summary for run in runs if run.benchmark == "chair")
    table = table_of(path)
    assert "| benchmark | metric | base | DDPO |" in table and "| chair | CHAIR_i |" in table


def test_rlaif_v_two_rounds_with_chair_and_pope_after_each(tmp_path, models_dir):
    path, report = run_recipe("rlaif-v", tmp_path, models_dir)
    rounds_run = RoundsRun.objects.get(pk=stage(report, "rounds")["rounds_run"])
    assert (rounds_run.status, rounds_run.n_rounds) == (JobStatus.SUCCEEDED, 2)
    first, second = Round.objects.filter(rounds_run=rounds_run).order_by("number")
    base = rounds_run.base_artifact
    assert first.model.base == base and second.model.base == first.model  # lineage, round by round
    for round_ in (first, second):
        assert round_.labeler_job.status == JobStatus.SUCCEEDED and round_.snapshot.n_rows > 0
        trained(round_.training_run_id, method="dpo", base=round_.policy)
        # Queued by the rounds' training config (`benchmarks`), on the model each round produced.
        assert {r.benchmark for r in BenchmarkRun.objects.filter(model=round_.model)} == {"chair", "pope"}
    runs = succeeded_benchmarks(report, labels={"base", "round 1", "round 2"}, benchmarks={"chair", "pope"})
    assert {run.model for run in runs} == {base, first.model, second.model} and len(runs) == 6
    assert all(set(run.summary) >= {"random", "popular", "adversarial"} for run in runs if run.benchmark == "pope")
    assert [r["round"] for r in report["results"]["rounds"]] == [1, 2]
    assert "| pope | adversarial.f1 |" in table_of(path)


def test_ha_dpo_rewrites_as_chosen_train_a_lora_dpo_model_benchmarked_on_pope_and_shr(tmp_path, models_dir):
    path, report = run_recipe("ha-dpo", tmp_path, models_dir)
    labelled = stage(report, "AI labeler with rewrites")
    assert labelled["status"] == JobStatus.SUCCEEDED and labelled["labelled"] == 6 and labelled["rewrites"] > 0
    snapshot = DatasetSnapshot.objects.get(pk=stage(report, "snapshot of rewrite pairs")["snapshot"])
    rows = [json.loads(line) for line in Path(snapshot.path).read_text().splitlines()]
    rewrites = {f.response.text: f.rewrite["text"] for f in AIFeedback.objects.exclude(rewrite={})}
    assert rows and all(r["source"] == "ai" and rewrites[r["rejected"]] == r["chosen"] for r in rows)
    base = ModelArtifact.objects.get(name="recipe-tiny-vlm")
    adapter = trained(stage(report, "LoRA DPO")["training_run"], method="dpo", base=base)
    assert adapter.is_adapter and TrainingRun.objects.get(pk=adapter.produced_by_id).config["use_lora"] is True
    merged = ModelArtifact.objects.get(name=stage(report, "merge")["model"])
    assert (merged.is_adapter, merged.base, merged.produced_by_id) == (False, base, adapter.produced_by_id)
    runs = succeeded_benchmarks(report, labels={"base", "LoRA DPO"}, benchmarks={"pope", "shr"})
    assert {run.model for run in runs} == {base, merged}
    assert all(run.config["shapes"]["settings"] == ["random", "popular", "adversarial"]
               for run in runs if run.benchmark == "pope")  # fmt: skip
    assert all("shr" in run.summary for run in runs if run.benchmark == "shr")
    assert "| shr | shr |" in table_of(path)


def test_humor_contests_train_reward_dpo_and_best_of_n_judged_in_both_orders(tmp_path, models_dir):
    path, report = run_recipe("humor", tmp_path, models_dir)
    project = Project.objects.get(slug=stage(report, "import caption contests")["project"])
    assert project.kind == "rating"
    assert sorted(project.items.values_list("external_id", flat=True)) == ["660", "691"]
    assert all(item.image and item.responses.count() == 24 for item in project.items.all())
    assert stage(report, "snapshot")["pairs"] > 0
    reward = trained(stage(report, "reward model")["training_run"], method="reward",
                     base=ModelArtifact.objects.get(name="recipe-tiny-reward"))  # fmt: skip
    assert reward.kind == "reward"
    dpo = trained(
        stage(report, "DPO")["training_run"], method="dpo", base=ModelArtifact.objects.get(name="recipe-tiny-lm")
    )
    best = TrainingRun.objects.get(pk=stage(report, "best-of-N")["training_run"])
    assert best.status == JobStatus.SUCCEEDED and best.base_artifact == dpo
    assert best.config["reward_model"] == reward.location
    runs = succeeded_benchmarks(report, labels={"tiny LM", "DPO", "best-of-N"}, benchmarks={"humor"})
    for run in runs:
        ((name, figures),) = run.summary["models"].items()
        assert figures["n_pairs"] == 2 and 0 <= figures["win_rate"] <= 1 and "bt" in figures
        assert {r["player"] for r in run.summary["ratings"]} == {name, "human"}  # Bradley-Terry over both
        assert all(len(e.detail["judge_replies"]) == 2 for e in run.examples.all())  # asked in both orders
    assert "| humor | model.win_rate |" in table_of(path)


def test_scicap_ratings_train_control_token_sft_scored_with_and_without_the_good_prefix(tmp_path, models_dir):
    path, report = run_recipe("scicap", tmp_path, models_dir)
    project = Project.objects.get(slug=stage(report, "import figures")["project"])
    ratings = Rating.objects.filter(item__project=project)
    assert ratings.count() == 8 * 2 * 2  # eight figures, two captions each, two raters each
    for rating in ratings.select_related("response", "item"):
        true = rating.response.text == truth_of(rating.item.meta)
        assert rating.level >= 3 if true else rating.level <= 1
    sft = stage(report, "sft snapshot")
    assert (sft["good"], sft["bad"]) == (8, 8)
    snapshot = DatasetSnapshot.objects.get(pk=sft["snapshot"])
    completions = [json.loads(line)["completion"] for line in Path(snapshot.path).read_text().splitlines()]
    assert all(c.startswith(("[GOOD] ", "[BAD] ")) for c in completions)
    model = trained(stage(report, "control-token SFT")["training_run"], method="sft",
                    base=ModelArtifact.objects.get(name="recipe-tiny-vlm"))  # fmt: skip
    assert TrainingRun.objects.get(pk=model.produced_by_id).config["control_tokens"] is True
    runs = succeeded_benchmarks(report, labels={"[GOOD] prefix", "no prefix"}, benchmarks={"captions"})
    assert all(set(run.summary) >= {"ROUGE-L", "BLEU-4", "METEOR"} and run.model == model for run in runs)
    assert "| captions | METEOR |" in table_of(path)


def test_manage_recipe_prints_the_report_and_refuses_bad_settings(tmp_path, models_dir):
    out = io.StringIO()
    call_command("recipe", "rlhf-v", "--size", "small", "--seed", "1", "--out", str(tmp_path / "cli"),
                 "--models-dir", str(models_dir), stdout=out)  # fmt: skip
    printed = out.getvalue()
    assert "[rlhf-v] DDPO: training_run=" in printed
    assert "rlhf-v succeeded in" in printed and f"report: {tmp_path / 'cli' / 'report.json'}" in printed
    report = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert report["config"]["seed"] == 1 and report["status"] == "succeeded"
    with pytest.raises(CommandError, match="seed must be a whole number of at least 0"):
        call_command("recipe", "rlhf-v", "--seed", "-1", stdout=io.StringIO())
    with pytest.raises(CommandError, match="invalid choice: 'rlhf'"):
        call_command("recipe", "rlhf", stdout=io.StringIO())


def test_a_failed_stage_writes_a_failed_report_naming_it(tmp_path, models_dir, monkeypatch):
    from evaluation.recipes import RecipeFailed, rlhf_v

    monkeypatch.setattr(rlhf_v.RLHFVSettings, "of", classmethod(lambda cls, config: cls(max_steps=0)))
    config = RecipeConfig(out_dir=str(tmp_path / "bad"), models_dir=str(models_dir))
    with pytest.raises(RecipeFailed, match="max_steps"):
        recipe_run(name="rlhf-v", config=config, progress=lambda line: None)
    report = json.loads((tmp_path / "bad" / "report.json").read_text())
    assert report["status"] == "failed" and "max_steps" in report["error"]
    assert [s["stage"] for s in report["stages"]] == ["import", "corrections through the annotation API", "snapshot"]
    assert "failed" in (tmp_path / "bad" / "report.md").read_text().splitlines()[0]

    # The same failure in a worker's recipe run (the admin's) is recorded on its row.
    from evaluation.recipes import runs

    monkeypatch.setattr(runs, "recipe_config_build", lambda **values: config)
    row = runs.recipe_run_start(name="rlhf-v", size="small", seed=0, created_by=None)
    runs.recipe_run_execute(recipe_run_id=row.pk)
    row.refresh_from_db()
    assert row.status == JobStatus.FAILED and "max_steps" in row.error
    assert "[rlhf-v] snapshot:" in row.log and row.report_path == ""


def test_the_admin_starts_a_recipe_run_and_runs_it_again(admin_user, client, monkeypatch):
    from evaluation import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks.recipe_run_execute_task, "delay", queued.append)
    client.force_login(admin_user)
    refused = client.post("/admin/evaluation/reciperun/add/", {"name": "nope", "size": "small", "seed": 0})
    assert refused.status_code == 200 and RecipeRun.objects.count() == 0 and queued == []
    added = client.post("/admin/evaluation/reciperun/add/", {"name": "humor", "size": "small", "seed": 3})
    assert added.status_code == 302, added.content.decode()[-2000:]
    run = RecipeRun.objects.get()
    assert (run.name, run.size, run.seed, run.status, run.created_by) == ("humor", "small", 3, "queued", admin_user)
    assert queued == [run.pk]
    client.post("/admin/evaluation/reciperun/", {"action": "run_again", "_selected_action": [run.pk]})
    again = RecipeRun.objects.exclude(pk=run.pk).get()
    assert (again.name, again.seed, again.status) == ("humor", 3, "queued") and queued == [run.pk, again.pk]
