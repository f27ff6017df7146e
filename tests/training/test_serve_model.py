"""`serve_model` against the real `openai` client on a free loopback port: text and image chat answer as the
model does when called directly, logprobs are the model's own, concurrent requests are batched without
changing their answers, seeds repeat, stop sequences cut, errors have OpenAI's shape and status, the key is
checked, and the command serves a model folder until SIGTERM."""

import base64
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import openai
import pytest
import torch

from annotation.shapes_world import scene_generate, scene_render
from tests.conftest import REPO
from training.core import render_text, tokenizer_of
from training.generation import load_policy, sample_answers
from training.serving import ServeConfig, serve

KEY = "serve-test-key"


def png_data_url(seed: int) -> str:
    buffer = io.BytesIO()
    scene_render(scene_generate(seed=seed)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def client_for(server, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=60)


def chat(server, content, **settings):
    return client_for(server).chat.completions.create(
        model=server.model_name, messages=[{"role": "user", "content": content}], **settings
    )


def post_raw(server, body: bytes, *, key: str = KEY) -> tuple[int, dict]:
    """POST bytes the openai client would never send; returns (status, decoded JSON answer)."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request("POST", "/v1/chat/completions", body=body, headers={"Authorization": f"Bearer {key}"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    return response.status, answer


@pytest.fixture(scope="module")
def lm_server(tiny_lm_dir):
    with serve(model_path=tiny_lm_dir, config=ServeConfig(api_key=KEY, max_body_bytes=64 * 1024)) as server:
        yield server


@pytest.fixture(scope="module")
def vlm_server(tiny_vlm_dir):
    with serve(model_path=tiny_vlm_dir, config=ServeConfig(api_key=KEY, model_name="tiny-vlm")) as server:
        yield server


@pytest.fixture(scope="module")
def lm(tiny_lm_dir):
    return load_policy(tiny_lm_dir)


def test_text_chat_answers_as_the_model_samples_directly(lm_server, lm):
    """A greedy chat answer is the answer `sample_answers` gives for the same prompt (same rendering), the model
    is listed under its path, and usage counts the rendered prompt's tokens and the answer's."""
    model, processing_class = lm
    prompt = "Describe the picture."
    reply = chat(lm_server, prompt, max_tokens=6, temperature=0)
    expected = sample_answers(model, processing_class, prompts=[prompt], max_new_tokens=6, do_sample=False)[0][0]
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == "length"  # a random model never says EOS in six tokens here
    assert reply.model == lm_server.model_name
    rendered = render_text(processing_class, prompt=prompt, answer=None, with_image=False, use_template=True)
    prompt_tokens = len(tokenizer_of(processing_class)(rendered, add_special_tokens=False)["input_ids"])
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (prompt_tokens, 6)
    assert [m.id for m in client_for(lm_server).models.list()] == [lm_server.model_name]


def test_image_chat_reads_the_image_from_a_data_url(vlm_server, tiny_vlm_dir):
    """The VLM's greedy answer about a shapes-world PNG equals its direct answer with that image, and another
    image changes the first token's logprobs: the image reaches the model."""
    model, processor = load_policy(tiny_vlm_dir)
    question = "Is there a red circle in the image?"

    def ask(seed: int):
        content = [
            {"type": "image_url", "image_url": {"url": png_data_url(seed)}},
            {"type": "text", "text": question},
        ]
        return chat(vlm_server, content, max_tokens=4, temperature=0, logprobs=True, top_logprobs=3)

    first, other = ask(1), ask(2)
    image = scene_render(scene_generate(seed=1)).convert("RGB")
    expected = sample_answers(
        model, processor, prompts=[question], images=[[image]], max_new_tokens=4, do_sample=False
    )[0][0]
    assert first.choices[0].message.content == expected
    assert first.usage.prompt_tokens > 9  # the nine image tokens and the question's
    first_logprobs = [t.logprob for t in first.choices[0].logprobs.content[0].top_logprobs]
    other_logprobs = [t.logprob for t in other.choices[0].logprobs.content[0].top_logprobs]
    assert first_logprobs != other_logprobs


def test_logprobs_are_the_models_log_softmax(lm_server, lm):
    """For greedy decoding each answer token is the first of its top_logprobs (sorted, as many as asked), every
    logprob equals the log-softmax of a direct forward pass over the prompt and the tokens before it, and an
    answer that ended on EOS ended where EOS was the model's choice."""
    model, tokenizer = lm
    prompt = "What colour is the square?"
    reply = chat(lm_server, prompt, max_tokens=5, temperature=0, logprobs=True, top_logprobs=4)
    served = reply.choices[0].logprobs.content
    ended_on_eos = reply.choices[0].finish_reason == "stop"  # the EOS token is generated but not listed
    assert len(served) == reply.usage.completion_tokens - ended_on_eos >= 3

    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    for token in served:
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)
        best = torch.topk(logprobs, k=4)
        assert [t.token for t in token.top_logprobs] == [tokenizer.decode([i]) for i in best.indices.tolist()]
        assert [t.logprob for t in token.top_logprobs] == pytest.approx(best.values.tolist(), abs=1e-4)
        assert token.token == token.top_logprobs[0].token
        assert token.logprob == pytest.approx(float(best.values[0]), abs=1e-4)
        assert token.logprob == max(t.logprob for t in token.top_logprobs)
        ids = torch.cat([ids, best.indices[:1].view(1, 1)], dim=1)
    joined = b"".join(bytes(t.bytes) for t in served).decode("utf-8", errors="replace")
    assert joined.strip() == reply.choices[0].message.content
    # This answer has a token holding part of a UTF-8 character: its text shows U+FFFD, its bytes are the real
    # partial character (not U+FFFD's own encoding).
    split = [t for t in served if "\ufffd" in t.token]
    assert split
    for token in split:
        with pytest.raises(UnicodeDecodeError):
            bytes(token.bytes).decode("utf-8")
    if ended_on_eos:
        with torch.no_grad():
            assert int(model(input_ids=ids).logits[0, -1].argmax()) == tokenizer.eos_token_id


def test_concurrent_requests_are_batched_and_answer_as_if_alone(tiny_lm_dir, lm):
    """Four requests sent together run as one padded generate of four rows (the server waits for them), and
    each gets the answer its prompt gets alone: padding changes nothing."""
    model, tokenizer = lm
    prompts = ["Hi", "Describe the picture in a few words.", "What is left of the star?", "Count the shapes."]
    expected = [sample_answers(model, tokenizer, prompts=[p], max_new_tokens=5, do_sample=False)[0][0] for p in prompts]
    answers: dict[int, str] = {}
    config = ServeConfig(api_key=KEY, max_batch=4, batch_wait_ms=60_000)  # the batch closes when four are in
    with serve(model_path=tiny_lm_dir, config=config) as server:

        def ask(i: int) -> None:
            answers[i] = chat(server, prompts[i], max_tokens=5, temperature=0).choices[0].message.content

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert server.stats["batch_sizes"] == [4]
    assert [answers[i] for i in range(4)] == expected


def test_a_seed_makes_sampling_repeatable_and_n_gives_n_answers(lm_server):
    """The same seed gives the same n sampled answers twice; another seed gives others."""

    def sample(seed: int) -> list[str]:
        reply = chat(lm_server, "Describe the picture.", max_tokens=8, n=3, seed=seed, temperature=1.0)
        assert [c.index for c in reply.choices] == [0, 1, 2]
        return [c.message.content for c in reply.choices]

    first = sample(7)
    assert sample(7) == first
    assert sample(8) != first
    assert len(set(first)) > 1  # three samples, not one answer repeated


def test_a_stop_sequence_ends_the_answer_before_it(lm_server):
    """With a stop string taken from the middle of the greedy answer, the answer is what came before it and
    finishes with "stop"; its logprobs run to the token that completed the stop string."""
    full = chat(lm_server, "Count the shapes.", max_tokens=12, temperature=0).choices[0].message.content
    stop = full[len(full) // 2]
    reply = chat(lm_server, "Count the shapes.", max_tokens=12, temperature=0, stop=[stop], logprobs=True)
    choice = reply.choices[0]
    assert choice.message.content == full[: full.index(stop)].strip()
    assert choice.finish_reason == "stop"
    assert stop in "".join(t.token for t in choice.logprobs.content)
    assert reply.usage.completion_tokens == len(choice.logprobs.content) < 12


@pytest.mark.parametrize(
    ("settings", "param", "message"),
    [
        ({"n": 0}, "n", "n must be an integer from 1 to 16"),
        ({"temperature": 3}, "temperature", "temperature must be a number from 0 to 2"),
        ({"top_logprobs": 3}, "top_logprobs", "top_logprobs needs logprobs set to true"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "top_logprobs must be an integer from 0 to 20"),
        ({"stream": True}, "stream", "streaming is not supported"),
    ],
)
def test_a_bad_setting_is_refused_with_400_naming_it(lm_server, settings, param, message):
    """Each refusal is a 400 invalid_request_error whose param and message name the setting."""
    with pytest.raises(openai.BadRequestError) as caught:
        chat(lm_server, "Hi", **settings)
    assert caught.value.status_code == 400
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["param"] == param
    assert message in caught.value.body["message"]


def test_errors_have_openais_shape_and_status(lm_server, vlm_server):
    """Bad JSON is a 400, an unknown model a 404, a remote image URL a 400 saying it is not fetched, an image
    sent to a text model a 400, and a body over the limit a 413; the server keeps answering afterwards."""
    status, answer = post_raw(lm_server, b'{"model": ')
    assert status == 400 and answer["error"]["code"] == "invalid_json"
    assert set(answer["error"]) == {"message", "type", "param", "code"}

    with pytest.raises(openai.NotFoundError) as caught:
        client_for(lm_server).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["code"] == "model_not_found"

    remote = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}, {"type": "text", "text": "?"}]
    with pytest.raises(openai.BadRequestError) as caught:
        chat(vlm_server, remote)
    assert caught.value.body["code"] == "image_url_not_allowed"
    assert "remote image URLs are not fetched" in caught.value.body["message"]

    inline = [{"type": "image_url", "image_url": {"url": png_data_url(1)}}, {"type": "text", "text": "?"}]
    with pytest.raises(openai.BadRequestError) as caught:
        chat(lm_server, inline)
    assert "this model reads text only" in caught.value.body["message"]

    big = json.dumps({"model": lm_server.model_name, "messages": [{"role": "user", "content": "x" * 70_000}]})
    status, answer = post_raw(lm_server, big.encode())
    assert status == 413 and answer["error"]["code"] == "request_too_large"

    assert chat(lm_server, "Hi", max_tokens=1).choices[0].finish_reason in ("stop", "length")


def test_the_api_key_is_required_when_set(lm_server):
    """A wrong or missing key is a 401 on every /v1 route; /health needs none."""
    with pytest.raises(openai.AuthenticationError) as caught:
        client_for(lm_server, key="wrong").models.list()
    assert caught.value.body["code"] == "invalid_api_key"
    status, answer = post_raw(lm_server, b"{}", key="")
    assert status == 401 and answer["error"]["code"] == "invalid_api_key"
    host, port = lm_server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/health")
    assert connection.getresponse().status == 200
    connection.close()


@pytest.mark.django_db
def test_registered_models_resolve_by_name_or_id_and_only_policies_serve(tiny_lm_dir):
    """An artifact is served from its location under its name, by name or id; a folder under its path; a
    reward model and an unknown name are refused with the reason."""
    from django.core.management.base import CommandError

    from training.management.commands.serve_model import model_to_serve
    from training.models import ArtifactKind, ModelArtifact

    policy = ModelArtifact.objects.create(name="tiny-policy", location=str(tiny_lm_dir))
    ModelArtifact.objects.create(name="tiny-reward", location=str(tiny_lm_dir), kind=ArtifactKind.REWARD)
    assert model_to_serve("tiny-policy") == (str(tiny_lm_dir), "tiny-policy")
    assert model_to_serve(str(policy.pk)) == (str(tiny_lm_dir), "tiny-policy")
    assert model_to_serve(str(tiny_lm_dir)) == (str(tiny_lm_dir), str(tiny_lm_dir))
    with pytest.raises(CommandError, match="tiny-reward is not a policy"):
        model_to_serve("tiny-reward")
    with pytest.raises(CommandError, match="neither a model folder nor a registered model"):
        model_to_serve("no-such-model")


def test_the_command_serves_until_sigterm(tiny_lm_dir, tmp_path):
    """`manage.py serve_model FOLDER --port 0` prints its URL, answers the openai client (with the key from
    LOUPE_SERVE_API_KEY), and on SIGTERM stops, exits 0 and frees its port."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "loupe.settings.test", "LOUPE_SERVE_API_KEY": KEY}
    log = (tmp_path / "serve.err").open("w")
    process = subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "serve_model", str(tiny_lm_dir), "--port", "0", "--max-batch", "2"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()  # blocks until the server is up (or the process died: "")
        assert line.startswith(f"Serving {tiny_lm_dir} at http://127.0.0.1:"), line + Path(log.name).read_text()
        url = line.split(" at ")[1].split()[0]
        client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=60)
        reply = client.chat.completions.create(
            model=str(tiny_lm_dir), messages=[{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0
        )
        assert reply.usage.completion_tokens >= 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert process.stdout.read().strip() == "Stopped."
        with pytest.raises(openai.APIConnectionError):
            client.models.list()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def test_a_request_too_long_for_the_context_fails_alone(tiny_lm_dir):
    """In a batch, a request whose prompt plus max_tokens passes the model's context gets a 400 naming both
    numbers, and the request batched with it is still answered."""
    from training.serving import ApiError, ModelRunner, parse_chat_request

    runner = ModelRunner(model_path=tiny_lm_dir)
    assert runner.context_length == 512

    def request(max_tokens: int):
        body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": max_tokens}
        return parse_chat_request(body | {"temperature": 0}, config=ServeConfig(), model_name="m", vision=False)

    fits, too_long = runner.run([request(3), request(510)])
    assert isinstance(too_long, ApiError) and too_long.status == 400
    assert too_long.code == "context_length_exceeded"
    rendered = runner.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    prompt_tokens = len(runner.tokenizer(rendered, add_special_tokens=False)["input_ids"])
    assert f"the prompt takes {prompt_tokens} and max_tokens asks for 510 more" in too_long.message
    assert prompt_tokens + 3 <= 512 < prompt_tokens + 510
    assert [c.completion_tokens for c in fits] == [3]
