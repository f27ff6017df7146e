"""Checks for images that come in with imports: size, type, pixel count, and safe fetching of URLs.

Plain Python (no Django): the limits are passed in, so the rules can be tested and reused alone.
"""

import hashlib
import io
import ipaddress
import socket
import urllib.parse
import urllib.request
import zipfile
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


def image_check(data: bytes, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    """Verify that `data` is a whole image of an allowed type within the size and pixel limits."""
    if len(data) > max_bytes:
        raise ImageRejected(f"image is {len(data)} bytes, more than the limit of {max_bytes}")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            image_format = probe.format
            width, height = probe.size
            if width * height > max_pixels:
                raise ImageRejected(f"image has {width}x{height} pixels, more than the limit of {max_pixels}")
            probe.verify()
        # verify() misses truncated pixel data; decoding does not.
        with Image.open(io.BytesIO(data)) as full:
            full.load()
    except ImageRejected:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageRejected(f"not a readable image ({error})") from error
    if image_format not in ALLOWED_FORMATS:
        raise ImageRejected(f"image type {image_format} is not allowed (PNG, JPEG, WEBP, GIF)")
    return CheckedImage(
        data=data,
        extension=ALLOWED_FORMATS[image_format],
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


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


def url_fetch_checked(url: str, *, max_bytes: int, allow_private: bool = False, timeout: float = 10.0) -> bytes:
    """Fetch an http(s) image URL, refusing private, loopback and link-local hosts.

    Every address the host resolves to must be public. Redirects are not followed, since a redirect
    could point inside the network. (A DNS answer that changes between this check and urllib's own
    lookup is not guarded against; deployments that import URLs from untrusted users should also
    fetch through an egress proxy.)
    """
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

    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"User-Agent": "Loupe-importer"})  # noqa: S310 (scheme checked)
    with opener.open(request, timeout=timeout) as response:
        data = response.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageRejected(f"image at URL is more than the limit of {max_bytes} bytes")
    return data
