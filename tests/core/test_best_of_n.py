"""Best-of-N keeps the highest-scoring of N sampled answers, honours a control-token model's prefix, works on
images, and its output trains the next round's SFT; under several processes it shares the prompts out, writing
each once and in order. (Realistic text checkpoints: tests/core/test_real_traits.py.)"""

import json

import pytest

from tests.training import scorers
from training.generation import load_policy
from training.methods.best_of_n import BestOfNConfig, best_of_n, process_share, run_best_of_n
from training.methods.ppo import prompt_rows
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


@pytest.mark.parametrize("vlm", ["tiny_vlm_dir", "real_vlm_dir"], ids=["tiny", "realistic"])
def test_vision_prompts_keep_their_images(vlm, request, image_preference_file, tmp_path):
    """With a VLM (also a bf16 one without a pad token and with 576 image tokens) the scorer sees each
    candidate's image and the written rows name the image files."""
    scorers.CALLS.clear()
    result = run_best_of_n(
        config=BestOfNConfig(n=2, reward_function="tests.training.scorers:recording", max_prompts=3),
        train_path=image_preference_file,
        base_model=str(request.getfixturevalue(vlm)),
        output_dir=tmp_path / "vbon",
    )
    rows = [json.loads(line) for line in (result.output_dir / "best.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(row["images"][0].endswith(".png") for row in rows)
    assert [len(call["images"]) for call in scorers.CALLS] == [6]


def test_a_stopped_run_resumes_after_the_prompts_it_wrote(tiny_lm_dir, text_preference_file, tmp_path, recording_hooks):
    """Stopped after its first batch of two prompts, a resumed run writes the other two only. A row a kill cut
    short at the end of the file is removed first, not counted and not glued to the next row."""
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
    third = json.dumps({"prompt": "the third prompt's row", "completion": "cut"})
    with (out / "best.jsonl").open("a") as f:
        f.write(third[:25])
    resuming = recording_hooks()
    rest = run_best_of_n(
        config=config,
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=out,
        resume=True,
        hooks=resuming,
    )
    lines = (out / "best.jsonl").read_text().splitlines()
    assert not rest.stopped_early and rest.steps == 2
    assert len(lines) == 4 and len({json.loads(line)["prompt"] for line in lines}) == 4
    assert "removed a row cut short at the end of best.jsonl" in resuming.lines


@pytest.mark.parametrize(("n_rows", "batch_size", "num_processes"), [(11, 2, 3), (4, 1, 2), (5, 4, 2), (3, 2, 1)])
def test_each_step_shares_its_prompts_out_in_order_and_every_prompt_once(n_rows, batch_size, num_processes):
    """At each step the processes' shares, taken in process order, are the step's next prompts in file order
    (at most batch_size each, none left over or taken twice), so gathering them writes the file in order."""
    written = []
    for start in range(0, n_rows, batch_size * num_processes):
        shares = [
            process_share(
                start=start, batch_size=batch_size, n_rows=n_rows, num_processes=num_processes, process_index=rank
            )
            for rank in range(num_processes)
        ]
        assert all(len(share) <= batch_size for share in shares)
        written.extend(i for share in shares for i in share)
    assert written == list(range(n_rows))


TWO_PROCESS_BEST_OF_N = """
import json, sys
from pathlib import Path
from accelerate import PartialState
from training.methods.best_of_n import BestOfNConfig, run_best_of_n
args = json.loads(sys.argv[1])
result = run_best_of_n(
    config=BestOfNConfig(**args["config"]),
    train_path=Path(args["train"]),
    base_model=args["base"],
    output_dir=Path(args["out"]),
)
state = PartialState()  # as the run set it up
if state.is_main_process:
    Path(args["report"]).write_text(json.dumps({"processes": state.num_processes, "steps": result.steps}))
state.destroy_process_group()  # as training.launch ends every process
"""


def test_two_processes_share_the_prompts_and_write_each_once_in_order(
    tiny_lm_dir, text_preference_file, tmp_path, run_on_two_processes
):
    """Launched on two processes, best-of-N takes 2 steps of 2 prompts for 4 prompts (one per process per step)
    and the file holds each prompt once, in the order of the snapshot (not every prompt once per process)."""
    report = tmp_path / "report.json"
    config = {"n": 2, "reward_function": "tests.training.scorers:word_count", "batch_size": 1}
    args = {"config": config, "train": str(text_preference_file), "base": str(tiny_lm_dir), "out": str(tmp_path / "o")}
    run_on_two_processes(TWO_PROCESS_BEST_OF_N, {**args, "report": str(report)})
    assert json.loads(report.read_text()) == {"processes": 2, "steps": 2}
    rows = [json.loads(line) for line in (tmp_path / "o" / "best.jsonl").read_text().splitlines()]
    assert [row["prompt"] for row in rows] == [row["prompt"] for row in prompt_rows(text_preference_file)]
