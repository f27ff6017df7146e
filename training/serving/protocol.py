"""The OpenAI chat-completions wire format as this server speaks it: a request body checked into a
``ChatRequest`` (images decoded from ``data:`` URLs, nothing fetched), answers (``Completion``) turned into the
response body, and ``ApiError`` in OpenAI's error shape. Plain Python: no torch, no Django."""

from __future__ import annotations

import base64
import binascii
import io
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from training.serving.config import ServeConfig

MAX_TOP_LOGPROBS = 20  # OpenAI's own limit
MAX_STOP_SEQUENCES = 4  # OpenAI's own limit
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class ApiError(Exception):
    """A request the server refuses, shaped as OpenAI shapes its errors."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.error_type, self.code, self.param = status, message, error_type, code, param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}


def bad_request(message: str, *, param: str | None = None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


@dataclass
class ChatRequest:
    """A validated chat-completions request: messages in the form ``render_text`` takes (image parts as
    ``{"type": "image"}`` where they stood, their decoded images in ``images`` in the same order)."""

    messages: list[dict]
    images: list[Any]
    max_tokens: int
    temperature: float
    top_p: float
    n: int
    seed: int | None
    stop: tuple[str, ...]
    logprobs: bool
    top_logprobs: int

    @property
    def sampled(self) -> bool:
        return self.temperature > 0

    def batch_key(self) -> tuple:
        """Requests with equal keys can share one ``generate``. A seeded sampled request gets a key of its own:
        its answer must depend on its seed, not on its neighbours."""
        alone = id(self) if self.sampled and self.seed is not None else None
        sampling = (self.temperature, self.top_p) if self.sampled else (0.0, 1.0)
        return (self.max_tokens, sampling, self.stop, bool(self.images), self.logprobs, alone)


@dataclass
class TokenLogprob:
    """One answer token as OpenAI lists it: its text, bytes, log-probability and the most likely alternatives."""

    token: str
    bytes: list[int]
    logprob: float
    top_logprobs: list[TokenLogprob] = field(default_factory=list)

    def as_json(self, *, with_top: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"token": self.token, "bytes": self.bytes, "logprob": self.logprob}
        if with_top:
            data["top_logprobs"] = [t.as_json(with_top=False) for t in self.top_logprobs]
        return data


@dataclass
class Completion:
    """One answer to a request: its text, why it ended ("stop" or "length"), its tokens' logprobs (None
    unless asked) and how many tokens the prompt and the answer took."""

    text: str
    finish_reason: str
    logprobs: list[TokenLogprob] | None
    prompt_tokens: int
    completion_tokens: int


def parse_chat_request(body: Any, *, config: ServeConfig, model_name: str, vision: bool) -> ChatRequest:
    """Check a decoded JSON body against what this server supports; ``ApiError`` names the first problem."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    if "model" not in body:
        raise bad_request("you must provide a model parameter", param="model", code="missing_required_parameter")
    if body["model"] != model_name:
        raise ApiError(
            404,
            f"The model `{body['model']}` does not exist: this server serves `{model_name}`.",
            param="model",
            code="model_not_found",
        )
    if body.get("stream"):
        raise bad_request("streaming is not supported by this server; send stream: false", param="stream")
    for name in ("tools", "functions", "tool_choice", "function_call", "logit_bias"):
        if body.get(name):
            raise bad_request(f"`{name}` is not supported by this server", param=name)
    for name in ("frequency_penalty", "presence_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise bad_request(f"`{name}` is not supported by this server (only 0)", param=name)
    response_format = body.get("response_format")
    if response_format not in (None, {"type": "text"}):
        raise bad_request(
            "only plain-text answers are supported (response_format type `text`)", param="response_format"
        )

    messages, images = _parse_messages(body.get("messages"), config=config, vision=vision)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = config.default_max_tokens if max_tokens is None else max_tokens
    _check_int(max_tokens, "max_tokens", low=1, high=config.max_tokens_limit)
    temperature = 1.0 if body.get("temperature") is None else body["temperature"]
    _check_number(temperature, "temperature", low=0.0, high=2.0)
    top_p = 1.0 if body.get("top_p") is None else body["top_p"]
    _check_number(top_p, "top_p", low=0.0, high=1.0)
    if top_p == 0:
        raise bad_request("top_p must be greater than 0", param="top_p")
    n = 1 if body.get("n") is None else body["n"]
    _check_int(n, "n", low=1, high=config.max_n)
    seed = body.get("seed")
    if seed is not None:
        _check_int(seed, "seed", low=-(2**63), high=2**63 - 1)
    stop = body.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if not all(isinstance(s, str) and s for s in stops) or len(stops) > MAX_STOP_SEQUENCES:
        raise bad_request(
            f"stop must be a non-empty string or a list of at most {MAX_STOP_SEQUENCES} of them", param="stop"
        )
    logprobs = body.get("logprobs") or False
    if not isinstance(logprobs, bool):
        raise bad_request("logprobs must be a boolean", param="logprobs")
    top_logprobs = body.get("top_logprobs") or 0
    _check_int(top_logprobs, "top_logprobs", low=0, high=MAX_TOP_LOGPROBS)
    if top_logprobs and not logprobs:
        raise bad_request("top_logprobs needs logprobs set to true", param="top_logprobs")
    return ChatRequest(
        messages=messages,
        images=images,
        max_tokens=max_tokens,
        temperature=float(temperature),
        top_p=float(top_p),
        n=n,
        seed=seed,
        stop=stops,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )


def _check_int(value: Any, name: str, *, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_request(f"{name} must be an integer from {low} to {high}, not {value!r}", param=name)


def _check_number(value: Any, name: str, *, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad_request(f"{name} must be a number from {low:g} to {high:g}, not {value!r}", param=name)


def _parse_messages(raw: Any, *, config: ServeConfig, vision: bool) -> tuple[list[dict], list[Any]]:
    """Chat messages as ``render_text`` takes them, and their images in order. Text-only content is joined
    into one string (as vLLM does): many chat templates only render string content."""
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages must be a non-empty list", param="messages")
    messages: list[dict] = []
    images: list[Any] = []
    for i, message in enumerate(raw):
        param = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise bad_request(f"{param} must be an object with a role among {sorted(ROLES)}", param=param)
        role = ROLES[message["role"]]
        content = message.get("content")
        if isinstance(content, str):
            messages.append({"role": role, "content": content})
            continue
        if not isinstance(content, list) or not content:
            raise bad_request(
                f"{param}.content must be a string or a non-empty list of parts", param=f"{param}.content"
            )
        parts: list[dict] = []
        for j, part in enumerate(content):
            part_param = f"{param}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append({"type": "text", "text": part["text"]})
            elif kind == "image_url":
                if role != "user":
                    raise bad_request(f"{part_param}: only user messages may hold images", param=part_param)
                if not vision:
                    raise bad_request(f"{part_param}: this model reads text only; it takes no images", param=part_param)
                images.append(_decode_image_part(part.get("image_url"), config=config, param=part_param))
                parts.append({"type": "image"})
            else:
                raise bad_request(f"{part_param} must be a text part or an image_url part", param=part_param)
        if any(p["type"] == "image" for p in parts):
            messages.append({"role": role, "content": parts})
        else:
            messages.append({"role": role, "content": "\n".join(p["text"] for p in parts)})
    return messages, images


def _decode_image_part(image_url: Any, *, config: ServeConfig, param: str) -> Any:
    """The RGB image of a ``data:image/...;base64,...`` URL, checked for type, bytes and pixels."""
    from PIL import Image

    from annotation.images import ImageRejected, image_check

    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise bad_request(f"{param}.image_url.url must be a string", param=param)
    if url.lower().startswith(("http://", "https://")):
        raise bad_request(
            f"{param}: remote image URLs are not fetched. This server makes no outside requests (it may have no "
            "network, and fetching any URL a client names would let clients reach private addresses through it); "
            "send the image inline as a data URL (data:image/png;base64,...).",
            param=param,
            code="image_url_not_allowed",
        )
    header, comma, payload = url.partition(",")
    if not (header.lower().startswith("data:image/") and header.lower().endswith(";base64") and comma):
        raise bad_request(f"{param}: the image must be a base64 data URL (data:image/png;base64,...)", param=param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise bad_request(f"{param}: the data URL is not valid base64", param=param) from error
    try:
        image_check(data, max_bytes=config.max_image_bytes, max_pixels=config.max_image_pixels)
    except ImageRejected as error:
        raise bad_request(f"{param}: {error}", param=param) from error
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def completion_response(*, model_name: str, completions: list[Completion], request: ChatRequest) -> dict[str, Any]:
    """The chat-completions JSON for a request's answers (``n`` choices)."""
    prompt_tokens = completions[0].prompt_tokens
    completion_tokens = sum(c.completion_tokens for c in completions)
    choices = []
    for index, completion in enumerate(completions):
        logprobs = None
        if request.logprobs and completion.logprobs is not None:
            logprobs = {"content": [t.as_json() for t in completion.logprobs], "refusal": None}
        choices.append(
            {
                "index": index,
                "message": {"role": "assistant", "content": completion.text, "refusal": None},
                "logprobs": logprobs,
                "finish_reason": completion.finish_reason,
            }
        )
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
