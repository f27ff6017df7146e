"""The labeler's backends on a real tiny VLM: the local transformers backend (answer token ids, batching that
changes nothing, a model fine-tuned here to answer shapes-world claims ranking truthful answers first) and the
OpenAI-compatible backend end to end against ``serve_model``'s server on a free port (no mock of HTTP): the
same verdicts as the local model, a server stopped mid-job, an answer that is neither yes nor no.
"""

import random

import pytest
import torch

from annotation.labeler.backends import LabelerBackendError
from annotation.labeler.backends.local import LocalBackend, answer_token_ids
from annotation.labeler.backends.openai_compat import OpenAICompatBackend
from annotation.labeler.claims import question_from_claim, split_claims
from annotation.labeler.config import LabelerConfig
from annotation.labeler.pipeline import AnswerToLabel, label_answers, yes_no_question
from annotation.labeler.prompts import prompt_set
from annotation.labeler.verdicts import NO_WORDS, YES_WORDS, YesNoQuestion
from annotation.shapes_world import (
    COLOURS,
    GRID,
    SHAPES,
    Scene,
    SceneObject,
    scene_caption,
    scene_generate,
    scene_hallucinated_caption,
    scene_render,
)
from training.core import encode_texts, render_text, tokenizer_of

PROMPTS = prompt_set("v1")
SIZE = 48  # the tiny VLM's image size: one 16-pixel patch per grid cell


def scene_questions(seed: int) -> tuple[object, list[tuple[str, bool]]]:
    """A scene's image and (question, truth) for the claims of its true caption and of four hallucinated
    ones: a claim is true iff the true caption makes it (shapes-world captions name every object)."""
    scene = scene_generate(seed=seed, width=SIZE, height=SIZE)
    truth = {c.text for c in split_claims(scene_caption(scene))}
    rng = random.Random(seed)
    false: set[str] = set()
    for _ in range(4):
        false |= {c.text for c in split_claims(scene_hallucinated_caption(scene, rng=rng)[0])} - truth
    rows = [(question_from_claim(c), True) for c in sorted(truth)] + [
        (question_from_claim(c), False) for c in sorted(false)
    ]
    return scene_render(scene), rows


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
# Trained as LLaVA is. Stage 1 stands in for the pre-trained CLIP a real LLaVA starts from: the vision tower
# learns what object each 16-pixel patch (one grid cell) holds; stage 1b aligns the projector; stage 2 trains
# the language model on the labeler's own questions. What each part buys (measured on 2 shared cores):
# - trained on the answer alone, the 2-layer language model stays at the yes/no prior for thousands of steps
#   (the answer depends on question and image together; nothing about either alone predicts it). The
#   language-model loss on the words of the true claims' questions (the image makes "green" -> "star" -> "in
#   the bottom left" predictable) teaches it to look up the object a word names first;
# - with that loss, image tokens as clean as word tokens (a learnt embedding per patch class) give the answer
#   in about 600 steps, but the tower's features do not (62 % of held-out object claims after 1200 steps, 59 %
#   by always answering no, though a probe reads 98 % of object patches right): stage 1b maps them onto codes;
# - one random code per class took held-out object claims (scenes 500-559) to 77-84 % in 2000 steps; a colour
#   code plus a shape code (built as the question is) to 84-91 %, but on one seed of three only: with the
#   projector still training in stage 2 the other two stayed at 67 % and 81 %. Frozen, all three pass 80 % by
#   step 1000 and end at 90-91 %, but the truthful caption won on 18, 17 and 16 of the 20 test scenes (the
#   training loss ends well below the held-out one); the object claims of 1200 scenes instead of 600 in the
#   same 2000 steps give 17, 17, 18, 17 and 16 (five training seeds: the scenes of stage 1, the order of
#   stage 2; this fixture's seed: 18). The margin is thin: with stage 1 at 1000 steps one seed of three never
#   left the yes/no prior (10 wins), so a change to any stage wants the same check over several seeds;
# - stage 1 on shapes-world's own scenes (2.5 objects in 9 cells) reaches 86 % of object patches in 1000
#   steps; on crowded scenes (about 6 objects) 97 % in 800.

PATCH = SIZE // GRID
OBJECT_CLASSES = [(colour, shape) for colour in COLOURS for shape in SHAPES]  # a patch's object; one more: none


def crowded_scene(seed: int) -> Scene:
    """A scene for stage 1 with an object in most cells (drawn as ``scene_generate`` draws them: 8-13 pixels,
    inside its cell), so each image shows about six objects instead of two and a half."""
    rng = random.Random(seed)
    objects = []
    for cell in range(GRID * GRID):
        if rng.random() < 0.3:
            continue
        row, col = divmod(cell, GRID)
        size = rng.randint(PATCH // 2, int(PATCH * 0.85))
        slack = (PATCH - size) // 2
        x = col * PATCH + PATCH // 2 + rng.randint(-slack, slack)
        y = row * PATCH + PATCH // 2 + rng.randint(-slack, slack)
        objects.append(SceneObject(shape=rng.choice(SHAPES), colour=rng.choice(COLOURS), x=x, y=y, size=size))
    return Scene(seed=seed, objects=objects, width=SIZE, height=SIZE)


def patch_classes(scene: Scene) -> list[int]:
    """The class of each patch in reading order: its object's (colour, shape) index, or "none"."""
    classes = [len(OBJECT_CLASSES)] * (GRID * GRID)
    for obj in scene.objects:
        classes[(obj.y // PATCH) * GRID + obj.x // PATCH] = OBJECT_CLASSES.index((obj.colour, obj.shape))
    return classes


def pretrain_vision(backend: LocalBackend, *, seeds: range, steps: int, lr: float, batch: int = 64) -> float:
    """Stage 1: the vision tower and a linear probe learn each patch's class on crowded scenes; the probe is
    dropped and the tower frozen. Returns the probe's accuracy on the object patches of the last 10 batches."""
    vision = backend.model.model.vision_tower
    scenes = [crowded_scene(seed) for seed in seeds]
    pixels = backend.processing_class.image_processor([scene_render(s) for s in scenes], return_tensors="pt")
    pixels, classes = pixels["pixel_values"], torch.tensor([patch_classes(s) for s in scenes])
    torch.manual_seed(0)
    probe = torch.nn.Linear(vision.config.hidden_size, len(OBJECT_CLASSES) + 1)
    optimizer = torch.optim.AdamW([*vision.parameters(), *probe.parameters()], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)  # ends cleaner
    right = []
    for step in range(steps):
        rows = slice((step * batch) % len(scenes), (step * batch) % len(scenes) + batch)
        logits = probe(vision(pixel_values=pixels[rows]).last_hidden_state[:, 1:])  # drop CLS: one per patch
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), classes[rows].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        objects = classes[rows] < len(OBJECT_CLASSES)
        right.append((logits.argmax(-1) == classes[rows])[objects].float().mean().item())
    vision.requires_grad_(False)
    return sum(right[-10:]) / len(right[-10:])


def align_projector(backend: LocalBackend, *, seeds: range, steps: int, lr: float, batch: int = 64) -> float:
    """Stage 1b, in the place of LLaVA's feature alignment: with the tower frozen, the projector learns to put
    each patch on the sum of a random code of its colour and one of its shape (drawn like word embeddings; an
    empty patch gets a code of its own), so an image token starts stage 2 as clean as a word token and built
    as the question is, from a colour and a shape. Returns the nearest-code accuracy on the object patches."""
    vision, projector = backend.model.model.vision_tower, backend.model.model.multi_modal_projector
    scenes = [crowded_scene(seed) for seed in seeds]
    pixels = backend.processing_class.image_processor([scene_render(s) for s in scenes], return_tensors="pt")
    classes = torch.tensor([patch_classes(s) for s in scenes])
    with torch.no_grad():
        patches = vision(pixel_values=pixels["pixel_values"]).last_hidden_state[:, 1:]
    std = backend.model.config.text_config.initializer_range
    width = backend.model.config.text_config.hidden_size
    draw = torch.Generator().manual_seed(0)
    empty = torch.randn(1, width, generator=draw) * std
    colour_codes = torch.randn(len(COLOURS), width, generator=draw) * std
    shape_codes = torch.randn(len(SHAPES), width, generator=draw) * std
    object_codes = torch.stack(
        [colour_codes[COLOURS.index(colour)] + shape_codes[SHAPES.index(shape)] for colour, shape in OBJECT_CLASSES]
    )
    codes = torch.cat([object_codes, empty])
    optimizer = torch.optim.AdamW(projector.parameters(), lr=lr)
    for step in range(steps):
        rows = slice((step * batch) % len(scenes), (step * batch) % len(scenes) + batch)
        loss = (projector(patches[rows]) - codes[classes[rows]]).pow(2).mean() / std**2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        nearest = torch.cdist(projector(patches), codes[None]).argmin(-1)
    objects = classes < len(OBJECT_CLASSES)
    return (nearest == classes)[objects].float().mean().item()


def claim_batch(backend: LocalBackend, examples: list[tuple[YesNoQuestion, bool]]) -> dict[str, torch.Tensor]:
    """Each question as the labeler asks it followed by its answer ("yes" or "no", then the template's end of
    turn), as one left-padded batch, with masks of the positions whose next token is the answer's first token,
    one of its other tokens, and a word of a true claim's question."""
    processing_class = backend.processing_class
    tokenizer = tokenizer_of(processing_class)

    def text(question: YesNoQuestion, answer: str | None) -> str:
        return render_text(processing_class, prompt=question.text, answer=answer, with_image=True, use_template=True)

    def length(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    texts = [text(q, "yes" if truth else "no") for q, truth in examples]
    answer_lengths = [length(full) - length(text(q, None)) for full, (q, _) in zip(texts, examples, strict=True)]
    tokenizer.padding_side = "left"
    inputs = encode_texts(processing_class, texts=texts, images=[[q.image] for q, _ in examples])
    ids = inputs["input_ids"]
    position = torch.arange(ids.shape[1]).expand_as(ids)
    answer_start = ids.shape[1] - torch.tensor(answer_lengths)[:, None]
    last_image = torch.where(ids == backend.model.config.image_token_id, position, -1).max(-1, keepdim=True).values
    question_mark = torch.where(ids == tokenizer.convert_tokens_to_ids("?"), position, -1).max(-1, keepdim=True).values
    true = torch.tensor([truth for _, truth in examples])[:, None]
    return {
        **inputs,
        "first_answer_token": position == answer_start - 1,
        "rest_of_answer": (position >= answer_start) & (position < ids.shape[1] - 1),
        # Inputs from the last image token to the word before "?" predict the question's words, up to "?".
        "question_words": (position >= last_image) & (position < question_mark) & true,
    }


def is_count_question(question: str) -> bool:
    return question.endswith(("objects?", "one object?"))


def fine_tune(backend: LocalBackend, *, seeds: range, steps: int, lr: float, batch: int = 32) -> list[float]:
    """Stage 2: train the language model (plain AdamW) to answer "yes" to the question of a true
    object claim and "no" to that of a false one, the questions rendered exactly as the labeler asks them, plus
    the language-model loss on the true questions' words; returns the answer losses. Count claims are left out:
    counting is a skill of its own, and a count claim is the same in both captions of a scene unless the error
    is an extra object, whose own claim then decides the ranking. Tower and projector are frozen, so the image
    tokens are computed once per batch here, and each step runs the language model as LLaVA's forward does
    (image tokens replaced by the projected patches)."""
    model = backend.model
    examples = []
    for seed in seeds:
        image, rows = scene_questions(seed)
        examples += [
            (yes_no_question(question=q, image=image, prompts=PROMPTS), truth)
            for q, truth in rows
            if not is_count_question(q)
        ]
    random.Random(0).shuffle(examples)
    # The projector stays on the codes of stage 1b: trained here too, it drifts off them while the language
    # model is still random, and the answer then came late or not at all (held-out object claims 66-81 % on
    # two of three seeds against 83-86 % by step 1000 frozen).
    projector = model.model.multi_modal_projector.requires_grad_(False)
    batches = []
    for i in range(0, len(examples) - batch + 1, batch):
        inputs = claim_batch(backend, examples[i : i + batch])
        with torch.no_grad():
            patches = model.model.vision_tower(pixel_values=inputs.pop("pixel_values")).last_hidden_state[:, 1:]
            batches.append({**inputs, "image_tokens": projector(patches)})
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    # Constant, then down to 0 over the second half: the answer settles.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, 2 * (1 - step / steps)))
    language_model = model.model.language_model
    model.train()
    losses = []
    for step in range(steps):
        inputs = batches[step % len(batches)]
        ids, first, rest, words = (
            inputs[name] for name in ("input_ids", "first_answer_token", "rest_of_answer", "question_words")
        )
        is_image = (ids == model.config.image_token_id)[..., None]
        embeds = language_model.embed_tokens(ids).masked_scatter(is_image, inputs["image_tokens"])
        hidden = language_model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"]).last_hidden_state
        scored = first | rest | words  # the vocabulary head only where a loss is taken
        token_losses = torch.zeros(first.shape)
        token_losses[scored] = torch.nn.functional.cross_entropy(
            model.lm_head(hidden[scored]), ids.roll(-1, dims=1)[scored], reduction="none"
        )
        answer_loss = token_losses[first].mean()
        loss = answer_loss + token_losses[rest].mean() + token_losses[words].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(answer_loss.item())
    model.eval()
    return losses


@pytest.fixture(scope="module")
def yes_no_labeler(tiny_vlm_dir, tmp_path_factory):
    """The tiny VLM trained in stages (the patches of crowded scenes 2000-4559, then the object claims of scenes
    1000-2199) to answer yes or no to shapes-world claims, saved to a folder."""
    backend = LocalBackend.from_path(tiny_vlm_dir, batch_size=32)
    # One thread: the same weights run after run (no thread-count-dependent summation order).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pretrain_vision(backend, seeds=range(2000, 2000 + 64 * 40), steps=700, lr=3e-3)
        align_projector(backend, seeds=range(2000, 2000 + 64 * 10), steps=300, lr=3e-3)
        losses = fine_tune(backend, seeds=range(1000, 2200), steps=2000, lr=1e-3)
    finally:
        torch.set_num_threads(threads)
    folder = tmp_path_factory.mktemp("yes-no-labeler")
    backend.model.save_pretrained(folder)
    backend.processing_class.save_pretrained(folder)
    return folder, losses


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
