"""Reward sources for online methods (PPO, GRPO, RLOO) and best-of-N: one callable shape for all of them.

A reward source scores answers::

    scorer(prompts=[...], completions=[...], images=[[PIL.Image, ...], ...] or None) -> [float, ...]

Two kinds exist: a reward model (``RewardModelScorer``: a folder written by ``train_reward``, or any text
sequence-classification reward model), and a Python function with the same signature that the admin
registered (``LOUPE_REWARD_FUNCTIONS``: a name for ``"package.module:function"``; nothing else is
imported); ``"labeler:<model>"`` names the AI labeler's score (``labeler_scorer``).
``trl_reward_function`` adapts a scorer to the reward-function signature trl's GRPO and RLOO trainers call.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from training.core import encode_texts, message_text, render_text
from training.methods.configs import LABELER_REWARD_PREFIX, registered_reward_function


class RewardScorer(Protocol):
    def __call__(
        self, *, prompts: Sequence[str | list[dict]], completions: Sequence[str], images: Sequence[list] | None
    ) -> list[float]: ...


class RewardModelScorer:
    """Scores answers with a reward model, rendering each (prompt, answer, image) as the model was trained."""

    def __init__(self, path: str, *, device: torch.device | str | None = None, batch_size: int = 16) -> None:
        from training.methods.reward import load_reward_model

        self.path = path
        self.model, self.processing_class, self.use_template = load_reward_model(path)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        # Scoring only: the saved dtype on a GPU, fp32 on the CPU (where bf16 kernels are slow or missing).
        self.model.to(self.device, **({"dtype": torch.float32} if self.device.type == "cpu" else {}))
        self.batch_size = batch_size
        self.__name__ = f"reward_model:{path}"

    @torch.no_grad()
    def __call__(
        self, *, prompts: Sequence[str | list[dict]], completions: Sequence[str], images: Sequence[list] | None
    ) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(prompts), self.batch_size):
            end = start + self.batch_size
            batch_images = [list(i or []) for i in images[start:end]] if images is not None else None
            texts = [
                render_text(
                    self.processing_class,
                    prompt=prompt,
                    answer=completion,
                    with_image=bool(batch_images and batch_images[k]),
                    use_template=self.use_template,
                )
                for k, (prompt, completion) in enumerate(zip(prompts[start:end], completions[start:end], strict=True))
            ]
            inputs = encode_texts(self.processing_class, texts=texts, images=batch_images)
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            scores.extend(self.model(**inputs).logits[:, 0].float().tolist())
        return scores


def import_reward_function(spec: str) -> Callable[..., list[float]]:
    """The function named by ``"package.module:function"``; call it only with a registered value."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ValueError(f"a reward function is named 'package.module:function', not {spec!r}")
    function = getattr(importlib.import_module(module_name), name, None)
    if not callable(function):
        raise ValueError(f"{spec}: {module_name} has no function {name!r}")
    return function


def registered_reward_function_load(reward_function: str) -> Callable[..., list[float]]:
    """The registered reward function `reward_function` names (its name or exact value in the admin's
    LOUPE_REWARD_FUNCTIONS). Anything else is refused before any import: a queued config was checked in the
    web process, but the registry may have changed since, and the worker imports only what it lists."""
    spec = registered_reward_function(reward_function)
    if spec is None:
        raise ValueError(f"reward_function {reward_function.strip()[:100]!r} is not a registered reward function")
    return import_reward_function(spec)


def labeler_scorer(model: str, *, device: torch.device | str | None = None) -> RewardScorer:
    """The AI labeler's answer score (``annotation.labeler.LabelerScorer``) with ``model`` run locally."""
    from annotation.labeler.backends import backend_open
    from annotation.labeler.pipeline import LabelerScorer

    backend = backend_open(kind="local", model=model, device=str(device) if device is not None else None)
    return LabelerScorer(backend=backend)


def load_reward_scorer(
    *, reward_model: str = "", reward_function: str = "", device: torch.device | str | None = None
) -> RewardScorer:
    """The reward source a config names: a reward model folder/hub name, the labeler, or a registered scorer."""
    if reward_model.strip():
        return RewardModelScorer(reward_model.strip(), device=device)
    if reward_function.strip().startswith(LABELER_REWARD_PREFIX):
        return labeler_scorer(reward_function.strip().removeprefix(LABELER_REWARD_PREFIX).strip(), device=device)
    if reward_function.strip():
        return registered_reward_function_load(reward_function)
    raise ValueError("no reward source: set reward_model or reward_function")


def trl_reward_function(scorer: RewardScorer) -> Callable[..., list[float]]:
    """``scorer`` as trl's GRPO/RLOO call a reward function: prompts and completions (text or chat
    messages) plus the dataset's columns (``images`` among them) as keyword arguments."""

    def reward(prompts: list, completions: list, **kwargs: Any) -> list[float]:
        images = kwargs.get("images")
        texts = [message_text(c) for c in completions]
        plain_prompts = [p if isinstance(p, str) else _user_text(p) for p in prompts]
        return scorer(prompts=plain_prompts, completions=texts, images=images)

    reward.__name__ = getattr(scorer, "__name__", "reward")
    return reward


def _user_text(messages: list[dict]) -> str:
    """The text of the last user turn of a conversation (what a scorer takes as the prompt)."""
    user = [m for m in messages if m.get("role") == "user"] or messages
    return message_text([user[-1]])
