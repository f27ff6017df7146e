"""The AI labeler as a reward source by name: `reward_function: "labeler:<model>"` is checked before a run is
queued and resolved to the labeler's answer score (minus its rejected claims) with the model run locally."""

import random

import pytest

from annotation.labeler.backends.local import LocalBackend
from annotation.labeler.pipeline import AnswerToLabel, LabelerScorer, label_answers
from annotation.shapes_world import scene_caption, scene_generate, scene_hallucinated_caption, scene_render
from training.methods.configs import BestOfNConfig, GRPOConfig, check_reward_source
from training.rewards import load_reward_scorer, trl_reward_function


def test_a_labeler_reward_source_is_checked_before_a_run(tiny_vlm_dir, tmp_path):
    """A labeler with no model or a missing folder is refused with a message; a real folder is accepted by the
    online configs and best-of-N alike."""
    with pytest.raises(ValueError, match="needs the labeler model's folder or hub name"):
        check_reward_source("", "labeler:  ")
    with pytest.raises(ValueError, match=f"the labeler model folder {tmp_path / 'gone'} does not exist"):
        check_reward_source("", f"labeler:{tmp_path / 'gone'}")
    with pytest.raises(ValueError, match="set exactly one of reward_model"):
        check_reward_source(str(tiny_vlm_dir), f"labeler:{tiny_vlm_dir}")
    assert BestOfNConfig(reward_function=f"labeler:{tiny_vlm_dir}").reward_function == f"labeler:{tiny_vlm_dir}"
    assert GRPOConfig(reward_function=f"labeler:{tiny_vlm_dir}").reward_function == f"labeler:{tiny_vlm_dir}"


def test_the_labeler_reward_is_its_answer_score(tiny_vlm_dir):
    """`load_reward_scorer` gives a LabelerScorer whose scores are the labeler's scores of the same answers with
    their images, directly and through trl's reward-function signature (GRPO, RLOO)."""
    scenes = [scene_generate(seed=seed, width=48, height=48) for seed in (5, 6)]
    prompts = ["Describe the image."] * 4
    completions, images = [], []
    for scene in scenes:
        image = scene_render(scene)
        completions += [scene_caption(scene), scene_hallucinated_caption(scene, rng=random.Random(0))[0]]
        images += [[image], [image]]
    scorer = load_reward_scorer(reward_function=f"labeler: {tiny_vlm_dir}", device="cpu")
    assert isinstance(scorer, LabelerScorer) and scorer.__name__ == f"labeler:{tiny_vlm_dir}"
    scores = scorer(prompts=prompts, completions=completions, images=images)

    backend = LocalBackend.from_path(tiny_vlm_dir)
    answers = [
        AnswerToLabel(key=str(k), item_key=str(k), prompt=p, answer=c, image=i[0])
        for k, (p, c, i) in enumerate(zip(prompts, completions, images, strict=True))
    ]
    assert scores == [a.score for a in label_answers(answers=answers, backend=backend)]
    assert all(score <= 0 for score in scores) and len(set(scores)) > 1
    assert trl_reward_function(scorer)(prompts=prompts, completions=completions, images=images) == scores
