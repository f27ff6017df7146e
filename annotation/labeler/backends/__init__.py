"""The labeler's backends behind one interface (``LabelerBackend``): a local transformers model
(``backends.local``) or any OpenAI-compatible server (``backends.openai_compat``: vLLM, Ollama, llama.cpp,
TGI, Loupe's own ``serve_model``).

A backend answers yes/no questions with the probability masses of yes and no at the first answer token, and
writes text for the prompted steps (divide, questions, rewrite, candidates). Failures it cannot get past (a
server down after its retries, an answer that is neither yes nor no) raise ``LabelerBackendError``, whose
message says what to fix. This module imports neither torch nor openai; ``backend_open`` imports the one
asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from annotation.labeler.verdicts import YesNoQuestion, YesNoVerdict

BACKEND_KINDS = ("local", "openai")


class LabelerBackendError(RuntimeError):
    """The labeler's model could not answer: the message says why (server down, nonsense answer, ...)."""


class LabelerBackend(Protocol):
    name: str
    """The labeler model's name as verdicts record it (``AIFeedback.labeler_model``)."""

    def yes_probabilities(self, *, questions: Sequence[YesNoQuestion]) -> list[YesNoVerdict]:
        """One verdict per question, in order (as many questions at once as the backend can batch)."""
        ...

    def generate(
        self,
        *,
        prompts: Sequence[str],
        images: Sequence[Any] | None,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> list[str]:
        """One answer per prompt (with its image, a PIL image or None); temperature 0 decodes greedily."""
        ...


def backend_open(
    *,
    kind: str,
    model: str,
    base_url: str = "",
    api_key: str = "",
    device: str | None = None,
    batch_size: int = 32,
    timeout: float = 60.0,
    max_retries: int = 2,
    max_concurrency: int = 8,
) -> LabelerBackend:
    """A backend of ``kind`` ("local": ``model`` is a folder or hub name; "openai": ``model`` is the served
    model's name at ``base_url``), built from a job's primitive settings."""
    if kind == "local":
        from annotation.labeler.backends.local import LocalBackend

        return LocalBackend.from_path(model, device=device, batch_size=batch_size)
    if kind == "openai":
        from annotation.labeler.backends.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(
            base_url=base_url,
            model=model,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
        )
    raise ValueError(f"backend kind must be one of {BACKEND_KINDS}, not {kind!r}")
