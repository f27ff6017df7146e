"""Best-of-N keeps the highest-scoring of N sampled answers, honours a control-token model's prefix, works on
images, and its output trains the next round's SFT."""

import json

from tests.training import scorers
from training.generation import load_policy
from training.methods.best_of_n import BestOfNConfig, best_of_n, run_best_of_n
from training.methods.sft import SFTConfig, train_sft
from training.rewards import load_reward_scorer


def test_the_best_answer_is_the_top_scored_candidate(tiny_lm_dir):
    """Each prompt gets N candidates; the kept one has the highest score, and it scores at least the mean."""
    model, processing_class = load_policy(tiny_lm_dir)
    scorer = load_reward_scorer(reward_function="tests.training.scorers:word_count")
    results = best_of_n(
        model, processing_class, scorer=scorer, prompts=["Describe the image.", "What shapes are in the image?"], n=5
    )
    assert len(results) == 2
    for result in results:
        assert len(result.candidates) == len(result.scores) == 5
        assert (
            result.best_score == max(result.scores) == scorer(prompts=["p"], completions=[result.best], images=None)[0]
        )
        assert result.best_score >= sum(result.scores) / 5


def test_a_run_writes_sft_rows_that_train_the_next_round(
    tiny_lm_dir, tiny_reward_dir, text_preference_file, tmp_path, recording_hooks
):
    """Over a split's prompts the run writes one best answer per prompt with its candidates and reports the
    gain of best over mean; an SFT run trains on that file."""
    hooks = recording_hooks()
    result = run_best_of_n(
        config=BestOfNConfig(n=3, reward_model=str(tiny_reward_dir), batch_size=5),
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "bon",
        hooks=hooks,
    )
    rows = [json.loads(line) for line in (result.output_dir / "best.jsonl").read_text().splitlines()]
    prompts = {json.loads(line)["prompt"] for line in text_preference_file.read_text().splitlines()}
    assert len(rows) == len(prompts) and {r["prompt"] for r in rows} == prompts
    for row in rows:
        assert row["score"] == max(c["score"] for c in row["candidates"]) and len(row["candidates"]) == 3
    assert all(metrics["gain"] >= 0 for _, _, metrics in hooks.steps)
    assert result.steps == hooks.steps[-1][1] == -(-len(prompts) // 5)

    sft = train_sft(
        config=SFTConfig(max_steps=2, sft_data=str(result.output_dir / "best.jsonl")),
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "sft",
    )
    assert sft.steps == 2


def test_vision_prompts_keep_their_images(tiny_vlm_dir, image_preference_file, tmp_path):
    """With a VLM the scorer sees each candidate's image and the written rows name the image files."""
    scorers.CALLS.clear()
    result = run_best_of_n(
        config=BestOfNConfig(n=2, reward_function="tests.training.scorers:recording", max_prompts=3),
        train_path=image_preference_file,
        base_model=str(tiny_vlm_dir),
        output_dir=tmp_path / "vbon",
    )
    rows = [json.loads(line) for line in (result.output_dir / "best.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(row["images"][0].endswith(".png") for row in rows)
    assert [len(call["images"]) for call in scorers.CALLS] == [6]


def test_a_stopped_run_resumes_after_the_prompts_it_wrote(tiny_lm_dir, text_preference_file, tmp_path, recording_hooks):
    """Stopped after its first batch of two prompts, a resumed run writes the other two only."""
    config = BestOfNConfig(n=2, reward_function="tests.training.scorers:word_count", batch_size=2)
    out = tmp_path / "bon"
    first = run_best_of_n(
        config=config,
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=out,
        hooks=recording_hooks(stop_at_step=1),
    )
    assert first.stopped_early and len((out / "best.jsonl").read_text().splitlines()) == 2
    rest = run_best_of_n(
        config=config, train_path=text_preference_file, base_model=str(tiny_lm_dir), output_dir=out, resume=True
    )
    lines = (out / "best.jsonl").read_text().splitlines()
    assert not rest.stopped_early and rest.steps == 2
    assert len(lines) == 4 and len({json.loads(line)["prompt"] for line in lines}) == 4
