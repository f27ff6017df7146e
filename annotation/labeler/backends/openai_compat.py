"""The OpenAI-compatible backend: any chat-completions server (vLLM, Ollama, llama.cpp, TGI, ``serve_model``)
through the ``openai`` client.

Each question is one request: the image as a PNG data URL in an ``image_url`` content part, then the text;
``max_tokens=1`` with ``logprobs`` and ``top_logprobs`` so the yes/no masses come from the first answer
token's top logprobs ("logprobs" verdicts). A server that returns no logprobs (or refuses the parameter with a
400, after which it is not asked again) is asked for a few tokens and judged by the answer's first word
("parsed" verdicts, P = 1 or 0).
Requests run in a thread pool of ``max_concurrency``; the client retries connection errors, timeouts, 429 and
5xx answers with exponential backoff ``max_retries`` times. What is left — the server down, an error answer,
an answer that is neither yes nor no — raises ``LabelerBackendError`` naming the server and the cause.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import openai

from annotation.labeler.backends import LabelerBackendError
from annotation.labeler.verdicts import YesNoQuestion, YesNoVerdict, verdict_from_text, verdict_from_top_logprobs

PARSED_MAX_TOKENS = 4
T = TypeVar("T")
R = TypeVar("R")


def image_data_url(image: Any) -> str:
    """A PIL image as a ``data:image/png;base64,...`` URL (PNG: lossless, so the server sees our pixels)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def chat_messages(text: str, image: Any) -> list[dict[str, Any]]:
    """One user message: the image part first (as LLaVA reads it), then the text."""
    if image is None:
        return [{"role": "user", "content": text}]
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image_data_url(image)}},
                {"type": "text", "text": text},
            ],
        }
    ]


class OpenAICompatBackend:
    """A labeler model behind an OpenAI-compatible chat-completions endpoint."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout: float = 60.0,
        max_retries: int = 2,
        max_concurrency: int = 8,
        top_logprobs: int = 20,
    ) -> None:
        if not base_url:
            raise ValueError("the OpenAI-compatible backend needs the server's base URL")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self.base_url = base_url
        self.model = model
        self.name = model
        self.max_concurrency = max_concurrency
        self.top_logprobs = top_logprobs
        self.logprobs_supported = True
        # Local servers take any key; the client refuses an empty one.
        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "none", timeout=timeout, max_retries=max_retries
        )

    def _map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if len(items) <= 1 or self.max_concurrency == 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(function, items))

    def _create(self, **kwargs: Any) -> Any:
        """One chat completion; the client's own retries done, what is left becomes ``LabelerBackendError``."""
        try:
            response = self.client.chat.completions.create(model=self.model, **kwargs)
        except openai.APIConnectionError as error:  # includes timeouts
            raise LabelerBackendError(
                f"the labeler server at {self.base_url} cannot be reached ({error.__class__.__name__}: {error})"
            ) from error
        except openai.APIStatusError as error:
            raise LabelerBackendError(
                f"the labeler server at {self.base_url} answered HTTP {error.status_code}: {error.message}"
            ) from error
        if not getattr(response, "choices", None) or response.choices[0].message is None:
            raise LabelerBackendError(f"the labeler server at {self.base_url} sent a reply without an answer")
        return response

    def _ask(self, question: YesNoQuestion) -> YesNoVerdict:
        messages = chat_messages(question.text, question.image)
        response = None
        if self.logprobs_supported:
            try:
                response = self._create(
                    messages=messages, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=self.top_logprobs
                )
            except LabelerBackendError as error:
                if not isinstance(error.__cause__, openai.BadRequestError):
                    raise
                self.logprobs_supported = False  # e.g. a server without logprobs refusing the parameter
        if response is None:  # a few tokens: a tokenizer may need more than one for "yes" ("y", "es")
            response = self._create(messages=messages, max_tokens=PARSED_MAX_TOKENS, temperature=0.0)
        choice = response.choices[0]
        answer = choice.message.content or ""
        content = getattr(choice.logprobs, "content", None) if choice.logprobs is not None else None
        if content:
            top = [(t.token, t.logprob) for t in content[0].top_logprobs or []] or [
                (content[0].token, content[0].logprob)
            ]
            verdict = verdict_from_top_logprobs(top)
            if verdict is not None:
                return verdict
        verdict = verdict_from_text(answer)
        if verdict is None:
            raise LabelerBackendError(
                f"the labeler model {self.model!r} at {self.base_url} answered {answer!r} to a yes/no question "
                f"({question.text[:80]!r}): neither yes nor no, and no yes/no token among its top logprobs"
            )
        return verdict

    def yes_probabilities(self, *, questions: Sequence[YesNoQuestion]) -> list[YesNoVerdict]:
        return self._map(self._ask, questions)

    def generate(
        self,
        *,
        prompts: Sequence[str],
        images: Sequence[Any] | None,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> list[str]:
        def write(index: int) -> str:
            image = images[index] if images is not None else None
            response = self._create(
                messages=chat_messages(prompts[index], image),
                max_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
            )
            return (response.choices[0].message.content or "").strip()

        return self._map(write, list(range(len(prompts))))
