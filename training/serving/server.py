"""The HTTP side: a worker thread that batches queued requests onto the ``ModelRunner``, OpenAI's routes over
the stdlib ``ThreadingHTTPServer``, and ``serve`` / ``RunningServer`` that start and stop both."""

from __future__ import annotations

import concurrent.futures
import hmac
import json
import queue
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from training.serving.config import ServeConfig
from training.serving.protocol import ApiError, ChatRequest, bad_request, completion_response, parse_chat_request
from training.serving.runner import ModelRunner


class ServerStopping(Exception):
    """The server stopped before this request ran."""


@dataclass
class _Pending:
    request: ChatRequest
    future: concurrent.futures.Future


class Batcher:
    """Collects requests from the HTTP threads and runs them on ``runner`` from one worker thread, grouping
    those that share decoding settings into one padded ``generate`` (up to ``max_batch`` rows)."""

    def __init__(self, *, runner: ModelRunner, max_batch: int, batch_wait_ms: float) -> None:
        self.runner = runner
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_ms / 1000
        self.batch_sizes: list[int] = []  # rows per generate, for benches and tests
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="serve-model-worker", daemon=True)
        self._thread.start()

    def submit(self, request: ChatRequest) -> concurrent.futures.Future:
        pending = _Pending(request, concurrent.futures.Future())
        with self._lock:  # so stop() cannot drain the queue between this check and this put
            if self._stopping.is_set():
                raise ServerStopping
            self._queue.put(pending)
        return pending.future

    def stop(self) -> None:
        """Finish the batch in progress, fail what still waits, and join the worker."""
        with self._lock:
            self._stopping.set()
        self._thread.join()
        while True:
            try:
                self._queue.get_nowait().future.set_exception(ServerStopping())
            except queue.Empty:
                return

    def _work(self) -> None:
        waiting: list[_Pending] = []
        while not self._stopping.is_set():
            if not waiting:
                try:
                    waiting.append(self._queue.get(timeout=0.1))
                except queue.Empty:
                    continue
            deadline = time.monotonic() + self.batch_wait_s
            while sum(p.request.n for p in waiting) < self.max_batch:
                try:
                    waiting.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            group, waiting = self._take_group(waiting)
            self._run(group)
        for pending in waiting:
            pending.future.set_exception(ServerStopping())

    def _take_group(self, waiting: list[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
        """The oldest request and those after it with the same key, up to ``max_batch`` rows; and the rest."""
        key, rows = waiting[0].request.batch_key(), 0
        group, rest = [], []
        for pending in waiting:
            if pending.request.batch_key() == key and (not group or rows + pending.request.n <= self.max_batch):
                group.append(pending)
                rows += pending.request.n
            else:
                rest.append(pending)
        return group, rest

    def _run(self, group: list[_Pending]) -> None:
        self.batch_sizes.append(sum(p.request.n for p in group))
        try:
            results = self.runner.run([p.request for p in group])
        except Exception as error:  # every failure goes back to its requests; the worker lives on
            for pending in group:
                pending.future.set_exception(error)
            return
        for pending, result in zip(group, results, strict=True):
            if isinstance(result, ApiError):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)


# --------------------------------------------------------------------------------------------------------------
# HTTP


class _Handler(BaseHTTPRequestHandler):
    """OpenAI's routes over ``http.server``; ``self.server.app`` is the ``RunningServer``."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects
    timeout = 60  # a client that stops sending mid-request does not hold its thread forever
    disable_nagle_algorithm = True  # headers and body go out as two writes: Nagle would hold the body ~40 ms

    def log_message(self, format: str, *args: Any) -> None:
        self.server.app.log(f"{self.address_string()} {format % args}")

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _answer(self, route: Any) -> None:
        try:
            status, body = route()
        except ApiError as error:
            status, body = error.status, error.body()
        except ServerStopping:
            status, body = 503, ApiError(503, "the server is stopping", error_type="server_error").body()
        except ConnectionError:  # the client is gone: nobody to answer (the server logs it)
            raise
        except Exception as error:  # a failed generate answers 500; the server lives on
            self.server.app.log(f"error: {type(error).__name__}: {error}")
            body = ApiError(500, f"the model failed: {type(error).__name__}: {error}", error_type="server_error").body()
            status = 500
        data = json.dumps(body).encode("utf-8")
        if self.server.app.stopped:  # a kept-alive connection must not outlive the server
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _get(self) -> tuple[int, dict]:
        app = self.server.app
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            return 200, {"status": "ok"}
        self._authorize()
        model = {"id": app.model_name, "object": "model", "created": app.created, "owned_by": "loupe"}
        if path == "/v1/models":
            return 200, {"object": "list", "data": [model]}
        if path.startswith("/v1/models/"):
            if path.removeprefix("/v1/models/") != app.model_name:
                raise ApiError(
                    404, f"The model `{path.removeprefix('/v1/models/')}` does not exist", code="model_not_found"
                )
            return 200, model
        raise ApiError(404, f"no route GET {path}", code="not_found")

    def _post(self) -> tuple[int, dict]:
        app = self.server.app
        path = self.path.split("?", 1)[0].rstrip("/")
        body = self._read_body(app.config.max_body_bytes)  # read first, so an early refusal keeps the connection
        self._authorize()
        if path != "/v1/chat/completions":
            raise ApiError(404, f"no route POST {path}", code="not_found")
        try:
            decoded = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise bad_request(f"the request body is not valid JSON: {error}", code="invalid_json") from error
        request = parse_chat_request(decoded, config=app.config, model_name=app.model_name, vision=app.runner.vision)
        result = app.batcher.submit(request).result()
        return 200, completion_response(model_name=app.model_name, completions=result, request=request)

    def _read_body(self, limit: int) -> bytes:
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            raise ApiError(411, "a Content-Length header is required (chunked bodies are not supported)")
        length = int(length_header)
        if length > limit:
            # Read (and drop) a bounded amount so the client sees this answer rather than a reset connection.
            self.close_connection = True
            remaining = min(length, 2 * limit)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            raise ApiError(
                413, f"the request body is {length} bytes, more than the limit of {limit}", code="request_too_large"
            )
        return self.rfile.read(length)

    def _authorize(self) -> None:
        key = self.server.app.config.api_key
        if not key:
            return
        header = self.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not hmac.compare_digest(given.encode("utf-8"), key.encode("utf-8")):
            raise ApiError(
                401, "Incorrect or missing API key: send `Authorization: Bearer <key>`.", code="invalid_api_key"
            )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not keep a stopped server's process alive
    app: RunningServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops its connection is a log line, not a traceback on stderr."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            self.app.log(f"{client_address[0]} connection lost: {error}")
            return
        super().handle_error(request, client_address)


class RunningServer:
    """A model being served: ``url`` (``http://host:port``), ``model_name``, ``stats`` and ``stop()``."""

    def __init__(self, *, runner: ModelRunner, config: ServeConfig, model_name: str, log: Any = None) -> None:
        self.runner, self.config, self.model_name = runner, config, model_name
        self.created = int(time.time())
        self._log = log
        self.batcher = Batcher(runner=runner, max_batch=config.max_batch, batch_wait_ms=config.batch_wait_ms)
        self.httpd = _HTTPServer((config.host, config.port), _Handler)
        self.httpd.app = self
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="serve-model-http", daemon=True
        )
        self.stopped = False
        self._thread.start()

    @property
    def stats(self) -> dict[str, Any]:
        """Rows per ``generate`` so far (how well requests were batched)."""
        return {"batch_sizes": list(self.batcher.batch_sizes)}

    def log(self, line: str) -> None:
        if self._log is not None:
            self._log(line)

    def stop(self) -> None:
        """Stop accepting connections, answer what still waits with 503, and join the threads. Idempotent."""
        if self.stopped:
            return
        self.stopped = True
        self.httpd.shutdown()
        self.batcher.stop()
        self.httpd.server_close()
        self._thread.join()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(*, model_path: str | Path, config: ServeConfig | None = None, log: Any = None) -> RunningServer:
    """Load the model at ``model_path`` and serve it until ``stop()``; returns once it accepts requests.

    ``log`` (a callable taking a line) receives one line per request and any model failure."""
    config = config or ServeConfig()
    runner = ModelRunner(model_path=model_path, device=config.device)
    return RunningServer(runner=runner, config=config, model_name=config.model_name or str(model_path), log=log)
