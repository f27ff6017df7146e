"""Serving a model over an OpenAI-compatible chat-completions API: what `manage.py serve_model` runs, and the
real server the AI labeler's OpenAI-client backend is tested against.

Use from Python (tests, the labeler, benches)::

    from training.serving import ServeConfig, serve

    with serve(model_path=folder, config=ServeConfig(port=0, api_key="k")) as server:  # port 0: a free one
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="k")
        reply = client.chat.completions.create(
            model=server.model_name,  # the id clients send; defaults to str(model_path)
            messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}},
                {"type": "text", "text": "Is there a red circle?"}]}],
            max_tokens=1, temperature=0, logprobs=True, top_logprobs=20,
        )
    # leaving the block calls server.stop(): no new connections, pending requests answered 503, worker joined.

``serve`` loads the model (``training.generation.load_policy``: fp32 on the CPU, an adapter folder onto its
base), starts the HTTP server (stdlib ``ThreadingHTTPServer``) and the model's worker thread, and returns a
``RunningServer`` (``.url``, ``.model_name``, ``.stats``, ``.stop()``) once both accept requests.

Endpoints: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions`` and ``GET /health`` (no
key needed). A chat request may carry ``max_tokens`` (or ``max_completion_tokens``), ``temperature`` (0 is
greedy), ``top_p``, ``n``, ``seed``, ``stop``, ``logprobs`` and ``top_logprobs`` (0-20); image parts must be
inline ``data:`` URLs: the server fetches nothing. Prompts are rendered as the training methods render them
(``training.core.render_text``: the chat template, image placeholders where the image parts stand, then the
model's answer prefix), and answers come back without that prefix, stripped, as ``sample_answers`` gives them.

Logprobs are those of the raw model (log-softmax of the logits at temperature 1, before temperature, top-p or
stop rules; vLLM's default): for greedy decoding the chosen token is the first of its ``top_logprobs``.
They cover the answer's tokens up to the one that completes a stop sequence; the EOS token is not listed.

Batching: one worker thread owns the model. Whenever it is free it takes every request waiting (up to
``max_batch`` rows, a request with ``n`` answers being ``n`` rows; optionally waiting ``batch_wait_ms`` for more)
and runs each group that shares decoding settings as one left-padded ``generate``. A sampled request with a
``seed`` runs alone, so its answer depends on the seed only, not on what it was batched with. On the tiny VLM
(CPU, one thread, 8 clients asking one-token yes/no questions with an image) that is about 2.4x the questions
per second of ``max_batch=1``; HTTP and JSON, not the model, then take most of the time.

Layout: ``config`` (``ServeConfig``), ``protocol`` (request checks, response and error bodies; no torch),
``runner`` (``ModelRunner``: the model and its batched ``generate``), ``server`` (batching worker, HTTP routes,
``serve``). Importing this package loads no torch: the model's modules load when ``serve`` starts.

Errors have OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``: 400 bad input, 401 missing or
wrong key, 404 unknown model or path, 413 body too large, 500 the model failed, 503 the server is stopping.
"""

from training.serving.config import ServeConfig
from training.serving.protocol import ApiError, ChatRequest, Completion, TokenLogprob, parse_chat_request
from training.serving.runner import ModelRunner
from training.serving.server import RunningServer, serve

__all__ = [
    "ApiError",
    "ChatRequest",
    "Completion",
    "ModelRunner",
    "RunningServer",
    "ServeConfig",
    "TokenLogprob",
    "parse_chat_request",
    "serve",
]
