"""The labeler's backends on a real tiny VLM: the local transformers backend (answer token ids, batching that
changes nothing, a model fine-tuned here to answer shapes-world claims ranking truthful answers first) and the
OpenAI-compatible backend end to end against ``serve_model``'s server on a free port (no mock of HTTP): the
same verdicts as the local model, a server stopped mid-job, an answer that is neither yes nor no.
"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from annotation.labeler.backends import LabelerBackendError
from annotation.labeler.backends.local import LocalBackend, answer_token_ids
from annotation.labeler.backends.openai_compat import OpenAICompatBackend
from annotation.labeler.config import LabelerConfig
from annotation.labeler.pipeline import AnswerToLabel, label_answers, yes_no_question
from annotation.labeler.prompts import prompt_set
from annotation.labeler.verdicts import NO_WORDS, YES_WORDS, YesNoQuestion
from annotation.shapes_world import scene_caption, scene_generate, scene_hallucinated_caption, scene_render
from training import shapes_vision
from training.core import tokenizer_of
from training.shapes_vision import scene_questions

REPO = Path(__file__).resolve().parents[2]

PROMPTS = prompt_set("v1")
SIZE = 48  # the tiny VLM's image size: one 16-pixel patch per grid cell


@pytest.fixture(scope="module")
def local_backend(tiny_vlm_dir):
    return LocalBackend.from_path(tiny_vlm_dir, batch_size=16)


def test_answer_token_ids_are_the_first_tokens_of_yes_and_no_after_the_generation_prompt(local_backend):
    """The tiny tokenizer starts an answer "yes" with "y" and " yes" with "Ġyes"; both count, and no id is both
    a yes and a no."""
    tokenizer = tokenizer_of(local_backend.processing_class)
    yes, no = local_backend.yes_no_ids(with_image=True)
    assert sorted(tokenizer.convert_ids_to_tokens(yes)) == sorted(["y", "Yes", "Ġyes", "ĠYes"])
    assert sorted(tokenizer.convert_ids_to_tokens(no)) == sorted(["n", "No", "Ġno", "ĠNo"])
    assert answer_token_ids(local_backend.processing_class, words=YES_WORDS, with_image=False) == yes
    assert not set(answer_token_ids(local_backend.processing_class, words=NO_WORDS, with_image=True)) & set(yes)


def test_batched_verdicts_equal_one_question_at_a_time(local_backend):
    """Questions of different lengths, with and without images, in batches of 16 (left-padded) give the
    probabilities each gives alone."""
    image, rows = scene_questions(1)
    questions = [yes_no_question(question=q, image=image, prompts=PROMPTS) for q, _ in rows]
    questions += [YesNoQuestion(text="Is the sky blue? Please answer yes or no."), *questions[:3]]
    batched = local_backend.yes_probabilities(questions=questions * 3)
    alone = [local_backend.yes_probabilities(questions=[q])[0] for q in questions]
    assert len(batched) == 3 * len(questions)
    torch.testing.assert_close(
        torch.tensor([[v.p_yes, v.p_no] for v in batched]),
        torch.tensor([[v.p_yes, v.p_no] for v in alone] * 3),
        rtol=1e-4,
        atol=1e-6,
    )
    assert {v.source for v in batched} == {"logits"}


# ------------------------------------------------------------------------------------------------------------
# A labeler fine-tuned here: answer "yes" to true shapes-world claims and "no" to false ones
#
# Trained as LLaVA is, by training.shapes_vision: stages 1 and 1b (``sighted_vlm``) give the tiny VLM eyes,
# stage 2 (``yes_no_labeler``) trains its language model on the labeler's own questions. What each part buys,
# and how thin the margin of the ranking test is, is recorded there, above ``fine_tune``.
#
# That margin depends on the CPU's kernels too: on an AMD EPYC with AVX-512 the same seeds end at 8 wins of 20
# (chance) where the AVX2 kernels give 16-18. So the labeler is trained in a process held to the AVX2 kernels
# (ATen's dispatch, MKL's and oneDNN's), which every x86-64 CI machine has: the backends are then tested on the
# same model wherever the suite runs. Everything else in this module runs on the machine's own kernels.
AVX2_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
TRAIN_LABELER = """
import sys
from training import shapes_vision
sighted = shapes_vision.sighted_vlm(base_dir=sys.argv[1], out_dir=sys.argv[2])
shapes_vision.yes_no_labeler(sighted_dir=sighted, out_dir=sys.argv[3])
"""


@pytest.fixture(scope="module")
def yes_no_labeler(tiny_vlm_dir, tmp_path_factory):
    """The tiny VLM trained in stages (the patches of crowded scenes 2000-4559, then the object claims of scenes
    1000-2199) to answer yes or no to shapes-world claims, saved to a folder, and its stage-2 answer losses."""
    tmp = tmp_path_factory.mktemp("labeler")
    folder = tmp / "yes-no-labeler"
    done = subprocess.run(  # noqa: S603 (this interpreter, the script above)
        [sys.executable, "-c", TRAIN_LABELER, str(tiny_vlm_dir), str(tmp / "sighted"), str(folder)],
        cwd=REPO, env={**os.environ, **AVX2_KERNELS}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return folder, json.loads((folder / shapes_vision.YES_NO_LOSSES_FILE).read_text())


def shapes_answers(seeds: range) -> list[AnswerToLabel]:
    """The true and a hallucinated caption of each scene, as answers to label."""
    answers = []
    for seed in seeds:
        scene = scene_generate(seed=seed, width=SIZE, height=SIZE)
        image = scene_render(scene)
        wrong = scene_hallucinated_caption(scene, rng=random.Random(seed))[0]
        for kind, text in (("truth", scene_caption(scene)), ("wrong", wrong)):
            answers.append(
                AnswerToLabel(key=f"{seed}-{kind}", item_key=str(seed), prompt="Describe.", answer=text, image=image)
            )
    return answers


# ------------------------------------------------------------------------------------------------------------
# The OpenAI-compatible backend against serve_model


@pytest.fixture(scope="module")
def served_labeler(yes_no_labeler):
    from training.serving import ServeConfig, serve

    folder, _ = yes_no_labeler
    with serve(model_path=folder, config=ServeConfig(port=0, api_key="labeler-key", max_batch=16)) as server:
        yield server


def test_the_server_path_gives_the_local_models_verdicts_from_its_top_logprobs(yes_no_labeler, served_labeler):
    """Through the HTTP server (images as PNG data URLs, top-20 logprobs), every question gets the local
    model's yes and no masses, read as "logprobs" verdicts, and so the same accept/reject decision."""
    folder, _ = yes_no_labeler
    local = LocalBackend.from_path(folder)
    remote = OpenAICompatBackend(
        base_url=served_labeler.url + "/v1", model=served_labeler.model_name, api_key="labeler-key", max_concurrency=4
    )
    questions = []
    for seed in (7, 8):
        image, rows = scene_questions(seed)
        questions += [yes_no_question(question=q, image=image, prompts=PROMPTS) for q, _ in rows]
    served = remote.yes_probabilities(questions=questions)
    mine = local.yes_probabilities(questions=questions)
    assert {v.source for v in served} == {"logprobs"}
    torch.testing.assert_close(
        torch.tensor([[v.p_yes, v.p_no] for v in served]),
        torch.tensor([[v.p_yes, v.p_no] for v in mine]),
        atol=2e-3,
        rtol=0,
    )
    assert [v.accepted for v in served] == [v.accepted for v in mine]
    assert min(v.p_yes + v.p_no for v in served) > 0.9  # the fine-tuned model answers yes or no


def test_a_server_stopped_mid_job_fails_it_and_resume_finishes_without_relabelling(yes_no_labeler):
    """The server stops after the first chunk: the job gets ``LabelerBackendError`` naming the server, keeps the
    first chunk's answers, and a resumed job on a new server labels only the rest, with the scores a job
    that never failed gives."""
    from training.serving import ServeConfig, serve

    folder, _ = yes_no_labeler
    answers = shapes_answers(range(20, 24))
    config = LabelerConfig(batch_size=4)
    reference = {
        a.answer.key: a.score
        for a in label_answers(answers=answers, backend=LocalBackend.from_path(folder), config=config)
    }
    stored: dict[str, float] = {}
    server = serve(model_path=folder, config=ServeConfig(port=0))
    remote = OpenAICompatBackend(base_url=server.url + "/v1", model=server.model_name, max_retries=0, timeout=5)
    try:
        # A stopped server refuses new connections and answers 503 on open ones: either is the server gone.
        down = rf"the labeler server at {server.url}/v1 (cannot be reached|answered HTTP 503)"
        with pytest.raises(LabelerBackendError, match=down):
            for result in label_answers(answers=answers, backend=remote, config=config):
                stored[result.answer.key] = result.score
                if len(stored) == 4:
                    server.stop()
    finally:
        server.stop()
    assert sorted(stored) == sorted(a.key for a in answers[:4])

    with serve(model_path=folder, config=ServeConfig(port=0)) as server:
        remote = OpenAICompatBackend(base_url=server.url + "/v1", model=server.model_name)
        asked = []
        ask = remote.yes_probabilities
        remote.yes_probabilities = lambda *, questions: asked.extend(questions) or ask(questions=questions)
        for result in label_answers(answers=answers, backend=remote, config=config, done=set(stored)):
            assert result.answer.key not in stored
            stored[result.answer.key] = result.score
    assert stored == reference
    assert {id(q.image) for q in asked} == {id(a.image) for a in answers[4:]}


def test_a_model_that_answers_neither_yes_nor_no_is_a_clear_error(tiny_vlm_dir):
    """The untrained tiny VLM answers word salad with no yes/no token in its top logprobs: the error quotes the
    answer and the question."""
    from training.serving import ServeConfig, serve

    with serve(model_path=tiny_vlm_dir, config=ServeConfig(port=0)) as server:
        remote = OpenAICompatBackend(base_url=server.url + "/v1", model=server.model_name)
        image, rows = scene_questions(3)
        with pytest.raises(LabelerBackendError, match=r"answered '.*' to a yes/no question \('(Is|Are) there"):
            remote.yes_probabilities(questions=[yes_no_question(question=rows[0][0], image=image, prompts=PROMPTS)])


def test_the_wrong_key_is_a_clear_error(served_labeler):
    """A 401 from the server is not retried into a hang: it names the status and the server."""
    remote = OpenAICompatBackend(base_url=served_labeler.url + "/v1", model=served_labeler.model_name, api_key="wrong")
    with pytest.raises(LabelerBackendError, match="answered HTTP 401"):
        remote.yes_probabilities(questions=[YesNoQuestion(text="Is it? Please answer yes or no.")])


def test_generate_through_the_server_matches_the_local_greedy_answer(yes_no_labeler, served_labeler):
    """Greedy text for the prompted steps (divide, questions, rewrite) is the local model's greedy text."""
    folder, _ = yes_no_labeler
    remote = OpenAICompatBackend(
        base_url=served_labeler.url + "/v1", model=served_labeler.model_name, api_key="labeler-key"
    )
    image, _ = scene_questions(4)
    prompts = ["Describe the image.", "What shapes are in the image?"]
    local = LocalBackend.from_path(folder)
    assert remote.generate(prompts=prompts, images=[image, None], max_new_tokens=6) == local.generate(
        prompts=prompts, images=[image, None], max_new_tokens=6
    )


# ------------------------------------------------------------------------------------------------------------
# The ranking test


def test_the_fine_tuned_labeler_ranks_truthful_answers_above_hallucinated_ones_on_new_scenes(yes_no_labeler):
    """On 20 scenes it was not trained on, the true caption scores higher than a hallucinated one in at least
    16, with RLAIF-V's score (minus the number of rejected claims)."""
    folder, losses = yes_no_labeler
    assert losses[-1] < losses[0]  # it did learn to answer yes or no
    labelled = {
        a.answer.key: a.score
        for a in label_answers(answers=shapes_answers(range(20)), backend=LocalBackend.from_path(folder))
    }
    wins = sum(labelled[f"{seed}-truth"] > labelled[f"{seed}-wrong"] for seed in range(20))
    assert wins >= 16, f"the truthful caption won on {wins} of 20 new scenes"


def test_a_server_refusing_logprobs_is_judged_by_its_answers_text(yes_no_labeler, served_labeler):
    """``serve_model`` refuses ``top_logprobs`` above 20 with a 400: the backend stops asking for logprobs and
    reads each answer's first word ("parsed" verdicts), which agree with the local model's decisions."""
    folder, _ = yes_no_labeler
    remote = OpenAICompatBackend(
        base_url=served_labeler.url + "/v1",
        model=served_labeler.model_name,
        api_key="labeler-key",
        top_logprobs=25,
        max_concurrency=1,
    )
    image, rows = scene_questions(9)
    questions = [yes_no_question(question=q, image=image, prompts=PROMPTS) for q, _ in rows]
    served = remote.yes_probabilities(questions=questions)
    assert remote.logprobs_supported is False
    assert {v.source for v in served} == {"parsed"}
    assert {(v.p_yes, v.p_no) for v in served} <= {(1.0, 0.0), (0.0, 1.0)}
    local = LocalBackend.from_path(folder).yes_probabilities(questions=questions)
    assert [v.accepted for v in served] == [v.accepted for v in local]


def test_backend_open_builds_the_kind_asked_for(tiny_vlm_dir):
    """A job's primitive settings give a local backend named by its path or a server backend named by its
    model; an unknown kind is refused."""
    from annotation.labeler.backends import backend_open

    local = backend_open(kind="local", model=str(tiny_vlm_dir), batch_size=4)
    assert isinstance(local, LocalBackend) and local.name == str(tiny_vlm_dir) and local.batch_size == 4
    remote = backend_open(kind="openai", model="llava-v1.5", base_url="http://127.0.0.1:9/v1", max_concurrency=3)
    assert isinstance(remote, OpenAICompatBackend) and remote.name == "llava-v1.5" and remote.max_concurrency == 3
    with pytest.raises(ValueError, match="backend kind must be one of"):
        backend_open(kind="vllm", model="x")
