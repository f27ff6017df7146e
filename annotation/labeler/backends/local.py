"""The local backend: a transformers model (a LLaVA-style VLM, or a text LM for text-only questions) scoring
many yes/no questions per forward pass.

Questions are rendered with the model's chat template (image placeholder first, as ``training.core`` renders
every prompt) and left-padded, so each row's first answer token is read at the last position and a padded row
reads the logits the row alone gives (the padding is masked; rotary positions are relative). The
yes and no masses are the softmax of those logits summed over the token ids each of "yes"/"Yes" and
"no"/"No" starts with when it opens an answer right after the generation prompt, with or without a leading
space (``answer_token_ids``): a byte-level BPE may start "yes" with "y" there and " yes" with "Ġyes".
Weights are fp32 on the CPU, as saved on a GPU (``training.generation.load_policy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from annotation.labeler.backends import LabelerBackendError
from annotation.labeler.verdicts import NO_WORDS, YES_WORDS, YesNoQuestion, YesNoVerdict
from training.core import render_text, tokenizer_of
from training.generation import decode_answers, encode_prompts, generate, load_policy


def answer_token_ids(processing_class: Any, *, words: Sequence[str], with_image: bool) -> list[int]:
    """The ids of the first token of each of ``words`` (and of each with a leading space) when it opens an
    answer after the chat template's generation prompt, without duplicates. A first token that is only
    whitespace or punctuation (a lone " ") would count for every answer and is skipped."""
    tokenizer = tokenizer_of(processing_class)
    prompt = render_text(processing_class, prompt="Is it?", answer=None, with_image=with_image, use_template=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids: list[int] = []
    for word in words:
        for variant in (word, " " + word):
            full = tokenizer(prompt + variant, add_special_tokens=False)["input_ids"]
            if full[: len(prompt_ids)] != prompt_ids or len(full) == len(prompt_ids):
                continue  # the word merged into the prompt's last token: no clean first answer token
            first = full[len(prompt_ids)]
            text = tokenizer.decode([first]).strip()
            if text and word.startswith(text) and first not in ids:
                ids.append(first)
    if not ids:
        raise LabelerBackendError(f"the tokenizer gives no answer token for any of {list(words)}")
    return ids


def yes_no_masses(
    logits: torch.Tensor, *, yes_ids: Sequence[int], no_ids: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """P(yes)+P(Yes) and P(no)+P(No) from first-answer-token logits (B, V) -> two (B,) tensors."""
    probs = logits.float().softmax(dim=-1)  # (B, V), in fp32 whatever the model's dtype
    return probs[:, list(yes_ids)].sum(dim=-1), probs[:, list(no_ids)].sum(dim=-1)


class LocalBackend:
    """A loaded model answering yes/no questions from its logits, ``batch_size`` questions per forward pass."""

    def __init__(self, model: torch.nn.Module, processing_class: Any, *, name: str, batch_size: int = 32) -> None:
        self.model = model
        self.processing_class = processing_class
        self.name = name
        self.batch_size = batch_size
        self._ids: dict[bool, tuple[list[int], list[int]]] = {}

    @classmethod
    def from_path(cls, path: str | Path, *, device: str | None = None, batch_size: int = 32) -> LocalBackend:
        """The model at ``path`` (a folder or hub name; fp32 on the CPU), named by its path."""
        model, processing_class = load_policy(path, device=device)
        return cls(model, processing_class, name=str(path), batch_size=batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def yes_no_ids(self, *, with_image: bool) -> tuple[list[int], list[int]]:
        """(yes ids, no ids) for answers to prompts with or without an image (computed once each)."""
        if with_image not in self._ids:
            yes = answer_token_ids(self.processing_class, words=YES_WORDS, with_image=with_image)
            no = answer_token_ids(self.processing_class, words=NO_WORDS, with_image=with_image)
            if set(yes) & set(no):
                raise LabelerBackendError(f"{self.name}: yes and no share answer tokens {set(yes) & set(no)}")
            self._ids[with_image] = (yes, no)
        return self._ids[with_image]

    def question_inputs(self, questions: Sequence[YesNoQuestion]) -> dict[str, torch.Tensor]:
        """Model inputs for questions that all have an image or all have none, left-padded, on the model's
        device. (Llama-family rotary positions make a row's logits independent of the padding before it.)"""
        with_image = questions[0].image is not None
        batch = encode_prompts(
            self.processing_class,
            prompts=[q.text for q in questions],
            images=[[q.image] for q in questions] if with_image else None,
            use_template=True,
        )
        return {k: v.to(self.device) for k, v in batch.inputs.items()}

    @torch.inference_mode()
    def yes_probabilities(self, *, questions: Sequence[YesNoQuestion]) -> list[YesNoVerdict]:
        verdicts: list[YesNoVerdict | None] = [None] * len(questions)
        for with_image in (True, False):  # one forward pass never mixes rows with and without an image
            rows = [i for i, q in enumerate(questions) if (q.image is not None) == with_image]
            yes_ids, no_ids = self.yes_no_ids(with_image=with_image) if rows else ([], [])
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                logits = self.model(**self.question_inputs([questions[i] for i in chunk])).logits[:, -1, :]
                p_yes, p_no = yes_no_masses(logits, yes_ids=yes_ids, no_ids=no_ids)
                for i, y, n in zip(chunk, p_yes.tolist(), p_no.tolist(), strict=True):
                    verdicts[i] = YesNoVerdict(p_yes=y, p_no=n, source="logits")
        return [v for v in verdicts if v is not None]

    def generate(
        self,
        *,
        prompts: Sequence[str],
        images: Sequence[Any] | None,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> list[str]:
        answers: list[str] = [""] * len(prompts)
        has_image = [images is not None and images[i] is not None for i in range(len(prompts))]
        for with_image in (True, False):
            rows = [i for i in range(len(prompts)) if has_image[i] == with_image]
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                batch = encode_prompts(
                    self.processing_class,
                    prompts=[prompts[i] for i in chunk],
                    images=[[images[i]] for i in chunk] if with_image and images is not None else None,
                    use_template=True,
                )
                completion_ids, mask = generate(
                    self.model,
                    self.processing_class,
                    batch,
                    max_new_tokens=max_new_tokens,
                    temperature=temperature if temperature > 0 else 1.0,
                    top_p=top_p,
                    do_sample=temperature > 0,
                )
                for i, text in zip(chunk, decode_answers(self.processing_class, completion_ids, mask), strict=True):
                    answers[i] = text
        return answers
