"""Checks for images that come in with imports: size, type, pixel count, and safe fetching of URLs.

Plain Python (no Django): the limits are passed in, so the rules can be tested and reused alone.
"""

import hashlib
import io
import ipaddress
import os
import re
import shutil
import socket
import time
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

ALLOWED_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}


class ImageRejected(ValueError):
    """An image (or a reference to one) that Loupe will not store; the message says why."""


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    extension: str
    width: int
    height: int
    sha256: str

    @property
    def storage_name(self) -> str:
        """Content-addressed relative path: the same image imported twice is stored once."""
        return f"items/{self.sha256[:2]}/{self.sha256}.{self.extension}"


def _pil_reason(error: Exception) -> str:
    """What PIL found wrong, without the `<_io.BytesIO object at 0x…>` it names in-memory files by."""
    if isinstance(error, UnidentifiedImageError):
        return "not a format Pillow recognises"
    return re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(error)) or type(error).__name__


def image_check(data: bytes, *, max_bytes: int, max_pixels: int, name: str | None = None) -> CheckedImage:
    """Verify that `data` is a whole image of an allowed type within the size and pixel limits.

    `name` (the file's path or reference, e.g. `images/cat.png`) is named in every refusal, so a user
    knows which of thousands of images is at fault."""
    label = f"image {name!r}" if name else "image"
    if len(data) > max_bytes:
        raise ImageRejected(f"{label} is {len(data)} bytes, more than the limit of {max_bytes}")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            image_format = probe.format
            width, height = probe.size
            if width * height > max_pixels:
                raise ImageRejected(f"{label} has {width}x{height} pixels, more than the limit of {max_pixels}")
            probe.verify()
        # verify() misses truncated pixel data; decoding does not.
        with Image.open(io.BytesIO(data)) as full:
            full.load()
    except ImageRejected:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageRejected(f"{label} is not a readable image ({_pil_reason(error)})") from error
    if image_format not in ALLOWED_FORMATS:
        raise ImageRejected(f"{label} is of type {image_format}, which is not allowed (PNG, JPEG, WEBP, GIF)")
    return CheckedImage(
        data=data,
        extension=ALLOWED_FORMATS[image_format],
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


class ImageStaging:
    """The images one import writes, kept in a staging folder (`<media root>/.incoming/<import>/`) until
    the import's rows are stored, then moved into place under their content-addressed names.

    `stage` writes an image that is not in place yet (once per import); `publish` moves the named ones
    into place; `discard` removes the staging folder and, after a failure, what `publish` moved. A process
    killed mid-way leaves only its staging folder, which `sweep` removes once it is `max_age` seconds old
    (`touch` keeps a running import's folder young).
    """

    INCOMING = ".incoming"

    def __init__(self, media_root: Path) -> None:
        self.media_root = Path(media_root)
        self.folder = self.media_root / self.INCOMING / f"{os.getpid()}-{uuid.uuid4().hex}"
        self._staged: dict[str, Path] = {}
        self._published: list[Path] = []

    def stage(self, image: CheckedImage) -> str:
        """Write `image` to the staging folder unless it is in place already; its storage name."""
        name = image.storage_name
        if name not in self._staged and not (self.media_root / name).exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            staged = self.folder / PurePosixPath(name).name
            staged.write_bytes(image.data)
            self._staged[name] = staged
        return name

    def publish(self, names: Iterable[str]) -> None:
        """Move the staged images among `names` into place (names already in place are left alone)."""
        for name in names:
            staged = self._staged.pop(name, None)
            if staged is None:
                continue
            target = self.media_root / name
            if target.exists():  # put there meanwhile by another import: same name, same bytes
                staged.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
            self._published.append(target)

    def discard(self, *, failed: bool) -> None:
        """Remove the staging folder (images of items that already existed); after a failure, also the
        images `publish` moved into place."""
        if failed:
            for target in self._published:
                target.unlink(missing_ok=True)
            self._published = []
        self._staged = {}
        shutil.rmtree(self.folder, ignore_errors=True)

    def touch(self) -> None:
        if self.folder.exists():
            os.utime(self.folder)

    @classmethod
    def sweep(cls, media_root: Path, *, max_age: float) -> int:
        """Remove staging folders untouched for `max_age` seconds (left by killed imports); how many."""
        removed = 0
        cutoff = time.time() - max_age
        incoming = Path(media_root) / cls.INCOMING
        for folder in incoming.iterdir() if incoming.is_dir() else ():
            try:
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            except FileNotFoundError:  # another import swept it first
                continue
        return removed


def safe_relative_path(reference: str) -> PurePosixPath:
    """A relative path that cannot leave its base folder (no absolute paths, no `..`)."""
    if "\\" in reference or "\x00" in reference:
        raise ImageRejected("image path may not contain backslashes or NUL characters")
    path = PurePosixPath(reference)
    if path.is_absolute() or not path.parts or any(part in ("..", "") for part in path.parts):
        raise ImageRejected("image path must be relative and stay inside its folder (no '..')")
    return path


class ImageSource:
    """Where relative image paths of an import resolve: a folder or a zip archive."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._zip = zipfile.ZipFile(base) if base.is_file() and zipfile.is_zipfile(base) else None
        if self._zip is None and not base.is_dir():
            raise ImageRejected(f"image source {base.name} is neither a folder nor a zip archive")

    def read(self, reference: str, *, max_bytes: int) -> bytes:
        relative = safe_relative_path(reference)
        if self._zip is not None:
            try:
                info = self._zip.getinfo(str(relative))
            except KeyError as error:
                raise ImageRejected(f"image {reference} is not in the archive") from error
            if info.file_size > max_bytes:
                raise ImageRejected(f"image is {info.file_size} bytes, more than the limit of {max_bytes}")
            return self._zip.read(info)
        path = (self.base / relative).resolve()
        if not path.is_relative_to(self.base.resolve()):
            raise ImageRejected("image path leaves its folder")
        if not path.is_file():
            raise ImageRejected(f"image {reference} does not exist")
        if path.stat().st_size > max_bytes:
            raise ImageRejected(f"image is {path.stat().st_size} bytes, more than the limit of {max_bytes}")
        return path.read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_global and not ip.is_multicast


def url_fetch_checked(
    url: str,
    *,
    max_bytes: int,
    allow_private: bool = False,
    timeout: float = 10.0,
    total_seconds: float = 30.0,
) -> bytes:
    """Fetch an http(s) image URL, refusing private, loopback and link-local hosts.

    Every address the host resolves to must be public. Redirects are not followed, since a redirect
    could point inside the network. (A DNS answer that changes between this check and urllib's own
    lookup is not guarded against; deployments that import URLs from untrusted users should also
    fetch through an egress proxy.)

    `timeout` bounds each wait on the server and `total_seconds` the whole download (settings
    `LOUPE_IMAGE_FETCH_SECONDS` for imports; checked between reads, so a fetch ends at most one wait after
    it): a server trickling a byte a second cannot hold the importing process. A body over `max_bytes`,
    announced or sent, is refused as soon as it is.
    """
    total = float(total_seconds)
    deadline = time.monotonic() + total
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ImageRejected("image URL must be http(s) with a host")
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))
    except socket.gaierror as error:
        raise ImageRejected(f"image URL host {parsed.hostname} does not resolve") from error
    addresses = {info[4][0] for info in infos}
    if not allow_private and not all(_address_is_public(address) for address in addresses):
        raise ImageRejected(f"image URL host {parsed.hostname} is a private or local address")

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
            raise ImageRejected("image URL redirects, which is not followed")

    too_slow = ImageRejected(f"image URL took longer than {total:g} s to download")
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"User-Agent": "Loupe-importer"})  # noqa: S310 (scheme checked)
    # Each wait (connecting, the headers, one read) is also no longer than the whole download may take.
    with opener.open(request, timeout=min(timeout, total)) as response:
        announced = response.headers.get("Content-Length", "")
        if announced.strip().isdigit() and int(announced) > max_bytes:
            raise ImageRejected(f"image at URL is more than the limit of {max_bytes} bytes ({int(announced)})")
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() >= deadline:
                raise too_slow
            # read1: what one receive brings, so the deadline is checked between trickled bytes.
            chunk = response.read1(64 * 1024)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise ImageRejected(f"image at URL is more than the limit of {max_bytes} bytes")
            chunks.append(chunk)
    return b"".join(chunks)
