"""The model side of the server: a loaded model answering a group of requests with one left-padded
``generate``, with OpenAI-style logprobs read from the raw logits. Imports torch only inside its methods."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from training.serving.protocol import ApiError, ChatRequest, Completion, TokenLogprob, bad_request


class ModelRunner:
    """A loaded generating model and its tokenizer or processor, answering groups of requests. Not
    thread-safe (``encode_prompts`` flips the tokenizer's padding side): one thread calls ``run``."""

    def __init__(self, *, model_path: str | Path, device: str | None = None) -> None:
        from training.core import has_chat_template, tokenizer_of
        from training.generation import answer_prefix_of, load_policy

        self.model, self.processing_class = load_policy(model_path, device=device)
        self.tokenizer = tokenizer_of(self.processing_class)
        if not has_chat_template(self.processing_class):
            raise ValueError(f"{model_path} has no chat template: a chat-completions server cannot render prompts")
        self.answer_prefix = answer_prefix_of(model_path) if Path(model_path).is_dir() else ""
        self.vision = getattr(self.model.config, "vision_config", None) is not None
        text_config = getattr(self.model.config, "text_config", None) or self.model.config
        self.context_length: int | None = getattr(text_config, "max_position_embeddings", None)
        self._token_cache: dict[int, tuple[str, list[int]]] = {}

    def run(self, requests: list[ChatRequest]) -> list[list[Completion] | ApiError]:
        """Answer requests that share a ``batch_key`` with one ``generate``; a request whose prompt and answer
        would not fit the model's context gets an ``ApiError`` instead, and the others still run."""
        import torch

        from training.generation import encode_prompts

        rows = [r for r in requests for _ in range(r.n)]
        batch = encode_prompts(
            self.processing_class,
            prompts=[r.messages for r in rows],
            images=[r.images for r in rows] if rows[0].images else None,
            use_template=True,
            answer_prefix=self.answer_prefix,
        )
        prompt_tokens = batch.inputs["attention_mask"].sum(dim=1).tolist()
        too_long = self._too_long(requests, prompt_tokens)
        if too_long:
            kept = [r for r in requests if id(r) not in too_long]
            answers = iter(self.run(kept) if kept else [])
            return [too_long[id(r)] if id(r) in too_long else next(answers) for r in requests]

        first = requests[0]
        if first.sampled and first.seed is not None:
            torch.manual_seed(first.seed)
        sequences, logits = self._generate(batch.inputs, first)
        completion_ids = sequences[:, batch.prompt_length :]
        completions = [
            self._completion(
                ids=completion_ids[i].tolist(),
                logits=[step[i] for step in logits] if logits is not None else None,
                request=row,
                prompt_tokens=int(prompt_tokens[i]),
            )
            for i, row in enumerate(rows)
        ]
        out: list[list[Completion] | ApiError] = []
        for request in requests:
            out.append(completions[: request.n])
            completions = completions[request.n :]
        return out

    def _too_long(self, requests: list[ChatRequest], prompt_tokens: list[int]) -> dict[int, ApiError]:
        if self.context_length is None:
            return {}
        errors: dict[int, ApiError] = {}
        row = 0
        for request in requests:
            needed = int(prompt_tokens[row]) + request.max_tokens
            if needed > self.context_length:
                errors[id(request)] = bad_request(
                    f"this model's context is {self.context_length} tokens; the prompt takes {prompt_tokens[row]} "
                    f"and max_tokens asks for {request.max_tokens} more",
                    param="messages",
                    code="context_length_exceeded",
                )
            row += request.n
        return errors

    def _generate(self, inputs: dict, request: ChatRequest) -> tuple[Any, list | None]:
        """``(sequences (B, P+C), raw logits per step [(B, V)] or None)``, decoded as ``request`` says."""
        import torch

        device = next(self.model.parameters()).device
        kwargs: dict[str, Any] = {
            "max_new_tokens": request.max_tokens,
            "do_sample": request.sampled,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
            "return_dict_in_generate": True,
            "output_logits": request.logprobs,  # the raw logits, before temperature, top-p and suppression
        }
        if request.sampled:  # plain sampling from the whole distribution unless top_p says otherwise
            kwargs.update(temperature=request.temperature, top_p=request.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if request.stop:  # ends each row at its stop sequence instead of running on to max_tokens
            kwargs.update(stop_strings=list(request.stop), tokenizer=self.tokenizer)
        image_token_id = getattr(self.model.config, "image_token_id", None)
        if image_token_id is not None:  # a sampled image placeholder would have no image features to match
            kwargs["suppress_tokens"] = [image_token_id]
        with torch.no_grad():
            output = self.model.generate(**{k: v.to(device) for k, v in inputs.items()}, **kwargs)
        return output.sequences, output.logits

    def _completion(
        self, *, ids: list[int], logits: list | None, request: ChatRequest, prompt_tokens: int
    ) -> Completion:
        """One row's answer: cut at EOS (kept out of the text and the logprobs) and at the first stop sequence
        (the text ends before it; the logprobs run to the token that completed it)."""
        eos = self.tokenizer.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        length = next((k for k, t in enumerate(ids) if t in eos_ids), None)
        finish_reason = "stop" if length is not None else "length"
        generated = length + 1 if length is not None else len(ids)
        tokens = ids[: length if length is not None else len(ids)]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        if request.stop:
            cut = min(((text.find(s), s) for s in request.stop if s in text), default=None)
            if cut is not None:
                position, stop = cut
                end = position + len(stop)
                through = (k for k in range(1, len(tokens)) if len(self._decode(tokens[:k])) >= end)
                tokens = tokens[: next(through, len(tokens))]
                text, finish_reason = text[:position], "stop"
                generated = len(tokens)
        token_logprobs = None
        if request.logprobs and logits is not None:
            token_logprobs = [
                self._token_logprob(step_logits=logits[k], token_id=token, top=request.top_logprobs)
                for k, token in enumerate(tokens)
            ]
        return Completion(
            text=text.strip(),
            finish_reason=finish_reason,
            logprobs=token_logprobs,
            prompt_tokens=prompt_tokens,
            completion_tokens=generated,
        )

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _token_logprob(self, *, step_logits: Any, token_id: int, top: int) -> TokenLogprob:
        import torch

        logprobs = torch.log_softmax(step_logits.float(), dim=-1)  # (V,)
        best = torch.topk(logprobs, k=top) if top else None
        alternatives = (
            [
                TokenLogprob(*self._token_text(int(i)), logprob=float(v))
                for v, i in zip(best.values.tolist(), best.indices.tolist(), strict=True)
            ]
            if best is not None
            else []
        )
        return TokenLogprob(*self._token_text(token_id), logprob=float(logprobs[token_id]), top_logprobs=alternatives)

    def _token_text(self, token_id: int) -> tuple[str, list[int]]:
        """A token's text and exact bytes. A byte-level BPE token may hold part of a UTF-8 character: its text
        then shows U+FFFD, but its bytes are the real ones, so a client joining bytes gets the exact answer."""
        if token_id not in self._token_cache:
            text = self.tokenizer.decode([token_id])
            raw = text.encode("utf-8")
            decoder = getattr(getattr(self.tokenizer, "backend_tokenizer", None), "decoder", None)
            if type(decoder).__name__ == "ByteLevel" and token_id not in self.tokenizer.all_special_ids:
                piece = self.tokenizer.convert_ids_to_tokens(token_id)
                byte_of = _byte_of_char()
                if all(c in byte_of for c in piece):
                    raw = bytes(byte_of[c] for c in piece)
            self._token_cache[token_id] = (text, list(raw))
        return self._token_cache[token_id]


@functools.cache
def _byte_of_char() -> dict[str, int]:
    """GPT-2's byte-level alphabet inverted: the byte each character of a byte-level BPE token stands for."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {char: byte for byte, char in bytes_to_unicode().items()}
