"""How ``serve`` listens, batches and limits requests (plain data: no torch, no Django)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ServeConfig:
    """How ``serve`` listens, batches and limits requests."""

    host: str = field(default="127.0.0.1", metadata={"help": "Address to bind; loopback unless told otherwise."})
    port: int = field(default=0, metadata={"help": "Port to bind; 0 picks a free one (see RunningServer.url)."})
    model_name: str | None = field(
        default=None, metadata={"help": "The model id clients send; None: the model path as given."}
    )
    api_key: str | None = field(
        default=None, metadata={"help": "If set, every /v1 request needs `Authorization: Bearer <key>`."}
    )
    max_batch: int = field(default=8, metadata={"help": "Most answer rows generated together in one batch."})
    batch_wait_ms: float = field(
        default=0.0,
        metadata={
            "help": "How long a request that finds the model idle waits for others to batch with. 0 (measured "
            "best): it runs at once, and what arrives meanwhile forms the next batch."
        },
    )
    default_max_tokens: int = field(default=256, metadata={"help": "Answer length when a request gives none."})
    max_tokens_limit: int = field(default=4096, metadata={"help": "Largest max_tokens a request may ask for."})
    max_n: int = field(default=16, metadata={"help": "Most answers (n) one request may ask for."})
    max_body_bytes: int = field(
        default=32 * 1024 * 1024, metadata={"help": "Largest request body (base64 images included); more is 413."}
    )
    max_image_bytes: int = field(default=20 * 1024 * 1024, metadata={"help": "Largest decoded image."})
    max_image_pixels: int = field(default=40_000_000, metadata={"help": "Largest image in pixels (width x height)."})
    device: str | None = field(default=None, metadata={"help": "torch device; None: the CPU (fp32 weights)."})

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if self.batch_wait_ms < 0:
            raise ValueError("batch_wait_ms must not be negative")
        if not 1 <= self.default_max_tokens <= self.max_tokens_limit:
            raise ValueError("default_max_tokens must be between 1 and max_tokens_limit")
