"""Issue 16, item 7: a remote image's download has an overall deadline and a size cap. A server that trickles a
byte at a time (each read well within the per-read timeout) used to hold the importing process for as long as
it liked; a server announcing or sending more than the limit is cut off as soon as it does."""

import http.server
import io
import json
import threading
import time

import pytest
from PIL import Image

from annotation.images import ImageRejected, url_fetch_checked
from annotation.models import Item


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    sent = 0  # bytes of body sent by the last answer

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        _Handler.sent = 0
        try:
            if self.path == "/trickle.png":
                self._head(len(PNG))
                for byte in PNG:
                    self._send(bytes([byte]))
                    time.sleep(0.1)  # each read answers within a tenth of a second
            elif self.path == "/announced-huge.png":
                self._head(50_000_000)
                for _ in range(200):
                    self._send(b"x" * 1000)
            elif self.path == "/unannounced-huge.png":
                self._head(None)
                for _ in range(200):
                    self._send(b"x" * 1000)
            else:
                self._head(len(PNG))
                self._send(PNG)
        except OSError:
            pass  # the client hung up, as it should

    def _head(self, length):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, data):
        self.wfile.write(data)
        self.wfile.flush()
        _Handler.sent += len(data)


@pytest.fixture
def image_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_an_image_is_fetched_whole(image_server):
    assert url_fetch_checked(f"{image_server}/cat.png", max_bytes=10_000, allow_private=True) == PNG


def test_a_trickling_server_is_cut_off_at_the_deadline(image_server):
    started = time.monotonic()
    with pytest.raises(ImageRejected, match="took longer than 1 s"):
        url_fetch_checked(f"{image_server}/trickle.png", max_bytes=10_000, allow_private=True, total_seconds=1)
    assert time.monotonic() - started < 2.0  # not the ~8 s the server would take, nor a per-read timeout's 10


def test_a_body_announced_over_the_limit_is_refused_before_it_is_read(image_server):
    with pytest.raises(ImageRejected, match="more than the limit of 1000 bytes \\(50000000\\)"):
        url_fetch_checked(f"{image_server}/announced-huge.png", max_bytes=1000, allow_private=True)


def test_a_body_sent_over_the_limit_is_cut_off(image_server):
    with pytest.raises(ImageRejected, match="more than the limit of 1000 bytes"):
        url_fetch_checked(f"{image_server}/unannounced-huge.png", max_bytes=1000, allow_private=True)


@pytest.mark.django_db
def test_an_import_naming_a_trickling_image_is_a_400_within_the_deadline(
    image_server, pairwise_project, researcher, api_client_for, settings, tmp_path
):
    settings.LOUPE_ALLOW_PRIVATE_URLS = True  # the test's server is on loopback
    settings.LOUPE_IMAGE_FETCH_SECONDS = 1
    settings.MEDIA_ROOT = str(tmp_path / "media")
    line = {
        "external_id": "x1",
        "prompt": "p",
        "image": f"{image_server}/trickle.png",
        "responses": [{"text": "A"}, {"text": "B"}],
    }
    upload = io.BytesIO((json.dumps(line) + "\n").encode())
    upload.name = "items.jsonl"
    started = time.monotonic()
    response = api_client_for(researcher).post(
        f"/api/v1/projects/{pairwise_project.slug}/imports/",
        {"format": "loupe-jsonl", "file": upload},
        format="multipart",
    )
    assert time.monotonic() - started < 3.0
    assert response.status_code == 400, response.content
    assert response.json()["extra"] == {"line": 1, "field": "image"}
    assert "took longer than 1 s" in response.json()["message"]
    assert not Item.objects.exists()
