"""What every format module shares: the import records, `FormatError`, the manifest, JSON line reading
with line numbers, field checks, copying images into an export, and what the RLHF-V and RLAIF-V release
formats share (their provenance fields, embedded images, the Parquet writer).

Plain Python, no Django. Readers yield `ItemRecord`s — one item (prompt + image) with its responses and
any annotations the file carries — and raise `FormatError` naming the line and field of the first bad
record. Readers are generators: the caller consumes all of them before storing anything, so a bad line
fails the whole import.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


class FormatError(ValueError):
    """A file that does not follow its format; `line` (1-based) and `field` say where."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None) -> None:
        self.message = message
        self.line = line
        self.field = field
        where = []
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)

    @property
    def extra(self) -> dict[str, Any]:
        """The location as the API's error `extra` carries it."""
        return {"line": self.line, "field": self.field}


# ---------------------------------------------------------------------------------------------------
# Import records


@dataclass
class ResponseRecord:
    """A response (model answer, caption) to an item; `rating_counts` holds imported aggregate ratings."""

    text: str
    model: str = ""
    rating_counts: dict[str, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class PairwiseRecord:
    """A judgment between two of the item's responses (indexes into `ItemRecord.responses`)."""

    response_a: int
    response_b: int
    choice: str  # "a", "b", "tie" or "both_bad"
    strength: float = 1.0
    reason: str = ""
    annotator: str = ""
    # Where the annotation came from (e.g. a Label Studio annotation id), for idempotent re-imports.
    source_id: str = ""


@dataclass
class CorrectionRecord:
    """Segments `(start, end, replacement, type)` over one response's text and the corrected text."""

    response: int
    corrected_text: str
    segments: list[tuple[int, int, str, str]] = field(default_factory=list)
    annotator: str = ""
    # Where the annotation came from (e.g. a Label Studio annotation id), for idempotent re-imports.
    source_id: str = ""


@dataclass
class RatingRecord:
    """One person's rating of one response, as a level name of the scale."""

    response: int
    level: str
    annotator: str = ""
    # Where the annotation came from (e.g. a Label Studio annotation id), for idempotent re-imports.
    source_id: str = ""


@dataclass
class RankingRecord:
    """An ordering of the item's responses, best first (indexes into `ItemRecord.responses`)."""

    order: list[int]
    annotator: str = ""
    # Where the annotation came from (e.g. a Label Studio annotation id), for idempotent re-imports.
    source_id: str = ""


@dataclass
class ItemRecord:
    """One imported item. `image` is the reference the file gives (relative path or URL) and
    `image_bytes` the image itself where the file embeds it. `line` is where the record starts."""

    external_id: str
    prompt: str
    image: str | None = None
    responses: list[ResponseRecord] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    image_bytes: bytes | None = field(default=None, repr=False)
    pairwise: list[PairwiseRecord] = field(default_factory=list)
    corrections: list[CorrectionRecord] = field(default_factory=list)
    ratings: list[RatingRecord] = field(default_factory=list)
    rankings: list[RankingRecord] = field(default_factory=list)
    line: int = field(default=0, compare=False)
    # A gold task's known answer (Loupe JSONL's `gold`), checked against the project on import.
    gold: Any = None


# ---------------------------------------------------------------------------------------------------
# Field checks (each names the line and field it failed on)


def require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], *, line: int, prefix: str = "") -> Any:
    """`obj[key]`, which must exist and be of `kind` (bool is never taken for int or float)."""
    name = f"{prefix}{key}"
    if key not in obj:
        raise FormatError("missing", line=line, field=name)
    return check_type(obj[key], kind, line=line, field=name)


def optional(
    obj: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, *, line: int, prefix: str = ""
) -> Any:
    """`obj[key]` if present and not null (then of `kind`), else `default`."""
    if obj.get(key) is None:
        return default
    return check_type(obj[key], kind, line=line, field=f"{prefix}{key}")


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", dict: "an object", list: "a list"}


def check_type(value: Any, kind: type | tuple[type, ...], *, line: int, field: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds) or (float in kinds and isinstance(value, int))
    if not ok:
        expected = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise FormatError(f"must be {expected}, not {type(value).__name__}", line=line, field=field)
    return value


# ---------------------------------------------------------------------------------------------------
# JSON: orjson on the hot paths, the standard library for what orjson refuses
#
# Decoding and encoding rows were half of a large export's time and a fifth of an import's; orjson does
# both five to fifteen times faster. It is stricter than JSON as Python reads and writes it (no NaN, no
# lone surrogates, integers within 64 bits, string keys only), so anything it refuses goes through `json`
# and reads as Python's json reads it. (It writes NaN as null: a file stays JSON that any reader takes.)


def json_loads(data: bytes | str) -> Any:
    """A JSON value; raises `json.JSONDecodeError` (as `json.loads` does) for text that is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def json_bytes(value: Any, *, newline: bool = False) -> bytes:
    """`value` as compact JSON, UTF-8 encoded (with a trailing newline for JSON Lines when asked)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE if newline else None)
    except orjson.JSONEncodeError:
        # ASCII with escapes: a lone surrogate has no UTF-8 form, but `\\udXXX` reads back as it was.
        return (json.dumps(value) + ("\n" if newline else "")).encode("ascii")


def json_line(record: Any) -> bytes:
    """`record` as one line of JSON Lines, UTF-8 encoded, newline included."""
    return json_bytes(record, newline=True)


def json_text(value: Any) -> str:
    """`value` as compact JSON text (for JSON columns written without the ORM)."""
    return json_bytes(value).decode()


# ---------------------------------------------------------------------------------------------------
# JSON with line numbers


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """`(line number, parsed value)` for each non-blank line, reading one line at a time."""
    # Bytes are decoded line by line (text mode decodes ahead in blocks) so a bad byte names its line.
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            # Almost every line: orjson checks UTF-8 and parses at once. The rest (a BOM, bytes that are not
            # UTF-8, what only Python's json reads, blank or broken lines) take the slow path below.
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass
            else:
                yield number, value
                continue
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise FormatError("not UTF-8 text", line=number) from None
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                raise FormatError(f"invalid JSON: {error.msg} (column {error.colno})", line=number) from None
            except RecursionError:
                raise FormatError("invalid JSON: nested too deeply", line=number) from None
            yield number, value


_WHITESPACE = re.compile(r"\s*")


def iter_json_array(text: str) -> Iterator[tuple[int, Any]]:
    """`(line where it starts, value)` for each element of a top-level JSON array in `text`."""
    decoder = json.JSONDecoder()

    def line_at(position: int) -> int:
        return text.count("\n", 0, position) + 1

    def fail(message: str, position: int) -> FormatError:
        return FormatError(message, line=line_at(position))

    position = _WHITESPACE.match(text, 0).end()
    if position >= len(text) or text[position] != "[":
        raise fail("expected a JSON array of records", position)
    position = _WHITESPACE.match(text, position + 1).end()
    if position < len(text) and text[position] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise FormatError(f"invalid JSON: {error.msg} (column {error.colno})", line=error.lineno) from None
        yield line_at(position), value
        position = _WHITESPACE.match(text, end).end()
        if position < len(text) and text[position] == ",":
            position = _WHITESPACE.match(text, position + 1).end()
            continue
        if position < len(text) and text[position] == "]":
            rest = _WHITESPACE.match(text, position + 1).end()
            if rest != len(text):
                raise fail("unexpected text after the JSON array", rest)
            return
        raise fail("invalid JSON: expected ',' or ']' between records", position)


def iter_json_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Records of a JSON array file, or of a JSON Lines file when it does not start with `[`."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            head = handle.read(4096).lstrip()
        if head.startswith("["):
            # A JSON array has to be read whole; JSON Lines is read line by line.
            text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError("not UTF-8 text") from None
    if head.startswith("["):
        yield from iter_json_array(text)
    else:
        yield from iter_jsonl(path)


class JsonArrayWriter:
    """Writes a JSON array one record at a time, so an export never holds all records."""

    def __init__(self, path: Path) -> None:
        self._handle = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._handle.write(b"[")
        self.count = 0

    def write(self, record: Any) -> None:
        self._handle.write(b"\n" if self.count == 0 else b",\n")
        self._handle.write(json_bytes(record))
        self.count += 1

    def close(self) -> None:
        self._handle.write(b"\n]\n")
        self._handle.close()

    def __enter__(self) -> JsonArrayWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------
# Exports: images and the manifest


def is_url(reference: str) -> bool:
    return reference.startswith(("http://", "https://"))


class ImageCopier:
    """Copies the images an export refers to into `out_dir/subdir`, once each, under content-hash names.

    A reference is a URL (kept as it is: exports never fetch), an absolute path, or a path relative to
    `image_root`. Only the map from reference to copied name is kept in memory.
    """

    def __init__(self, out_dir: Path, *, image_root: Path | None, subdir: str = "images") -> None:
        self.out_dir = Path(out_dir)
        self.image_root = Path(image_root) if image_root is not None else None
        self.subdir = subdir
        self._copied: dict[str, str] = {}

    def source(self, reference: str) -> Path:
        path = Path(reference)
        if not path.is_absolute():
            if self.image_root is None:
                raise ValueError(f"image {reference!r} is a relative path, but no image_root was given")
            path = self.image_root / path
        if not path.is_file():
            raise FileNotFoundError(f"image {reference!r} not found at {path}")
        return path

    def read(self, reference: str) -> bytes:
        if is_url(reference):
            raise ValueError(f"this export embeds images and never fetches URLs; store {reference!r} first")
        return self.source(reference).read_bytes()

    def copy(self, reference: str | None) -> str | None:
        """The exported image's path relative to `out_dir` (or the URL itself)."""
        if reference is None or reference == "":
            return None
        if is_url(reference):
            return reference
        if reference not in self._copied:
            source = self.source(reference)
            digest = file_sha256(source)
            name = f"{digest[:16]}{source.suffix.lower()}"
            target_dir = self.out_dir / self.subdir if self.subdir else self.out_dir
            target_dir.mkdir(parents=True, exist_ok=True)
            if not (target_dir / name).exists():
                shutil.copyfile(source, target_dir / name)
            self._copied[reference] = f"{self.subdir}/{name}" if self.subdir else name
        return self._copied[reference]

    @property
    def count(self) -> int:
        return len(set(self._copied.values()))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(
    out_dir: Path,
    *,
    format_name: str,
    snapshot_hash: str,
    counts: dict[str, Any],
    files: list[str],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes `out_dir/manifest.json` (format, version, snapshot hash, counts, files with their sha256,
    and any format-specific `extra` keys) and returns it."""
    out_dir = Path(out_dir)
    manifest = {
        "format": format_name,
        "format_version": FORMAT_VERSION,
        "snapshot_hash": snapshot_hash,
        "counts": counts,
        "files": [{"path": name, "sha256": file_sha256(out_dir / name)} for name in sorted(files)],
        "created_at": dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return manifest


def read_manifest(out_dir: Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / MANIFEST_NAME).read_text("utf-8"))


def manifest_extend(out_dir: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Adds `extra` keys to the `manifest.json` a writer made (facts only the caller knows, such as the
    snapshot's stats) and returns it; the manifest does not list itself, so its file hashes stay valid."""
    manifest = {**read_manifest(out_dir), **extra}
    (Path(out_dir) / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return manifest


def prepare_out_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


# ---------------------------------------------------------------------------------------------------
# The RLHF-V and RLAIF-V releases: Parquet with embedded images and the releases' own provenance

# Where a release row came from, as its own columns name it. The importers keep these in the item's meta
# and the exporters write them back, so a release imported and exported again keeps its fields.
PROVENANCE_KEYS = ("ds_name", "origin_dataset", "origin_split", "idx", "image_path")
PARQUET_MAGIC = b"PAR1"


def provenance_of(meta: dict[str, Any] | None) -> dict[str, Any]:
    """The release fields kept in an item's `meta` (those present and not null)."""
    return {key: meta[key] for key in PROVENANCE_KEYS if meta and meta.get(key) is not None}


def is_parquet(path: Path) -> bool:
    """Whether the file starts with Parquet's magic bytes (readers take JSON or Parquet under one name)."""
    with open(path, "rb") as handle:
        return handle.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC


def open_parquet(path: Path, *, required: tuple[str, ...]) -> Any:
    """A `pyarrow.parquet.ParquetFile` with the `required` columns (FormatError otherwise)."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise FormatError(f"not a readable Parquet file: {error}") from None
    names = set(parquet.schema_arrow.names)
    for name in required:
        if name not in names:
            raise FormatError("missing column", field=name)
    return parquet


def parquet_rows(parquet: Any, *, batch_rows: int, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The rows of an open Parquet file as dicts, `batch_rows` at a time; a damaged page (a corrupt header,
    compressed data that does not decompress, a cell that does not decode) is a FormatError naming the
    row where reading stopped, not whatever pyarrow raised."""
    import pyarrow as pa

    line = 0
    batches = parquet.iter_batches(batch_size=batch_rows, columns=columns)
    while True:
        try:
            batch = next(batches, None)
            rows = batch.to_pylist() if batch is not None else None
        except (OSError, ValueError, pa.ArrowException) as error:
            raise FormatError(f"the Parquet file is damaged: {str(error)[:200]}", line=line + 1) from None
        if rows is None:
            return
        for row in rows:
            line += 1
            yield row


def parquet_image_cell(value: Any, *, line: int) -> tuple[str | None, bytes | None]:
    """(path, bytes) of a release's `image` cell: a `{"bytes", "path"}` struct, a path string, or null."""
    if value is None:
        return None, None
    if isinstance(value, str):
        return value or None, None
    check_type(value, dict, line=line, field="image")
    data, path = value.get("bytes"), value.get("path")
    if data is not None and not isinstance(data, bytes):
        raise FormatError("image bytes must be binary", line=line, field="image.bytes")
    if path is not None and not isinstance(path, str):
        raise FormatError("must be a string", line=line, field="image.path")
    if data is None and not path:
        raise FormatError("an image needs bytes or a path", line=line, field="image")
    return path or None, data


def release_image(images: ImageCopier, pair: Any, *, format_name: str) -> dict[str, Any]:
    """A pair's image as the releases embed it, `{"bytes", "path"}`. The reference loaders read
    `image["bytes"]` on every row, so a pair without an image is refused (naming its item) rather than
    written as a null their loaders crash on."""
    if not pair.image:
        raise FormatError(
            f"item {pair.item_key!r} has no image: {format_name} rows need one (the reference loaders read "
            "image['bytes'] on every row); export text-only pairs as trl-jsonl, trl-parquet or dense-jsonl"
        )
    return {"bytes": images.read(pair.image), "path": Path(pair.image).name}


def write_release_parquet(
    *,
    rows: Iterable[Any],
    out_dir: Path,
    file_name: str,
    format_name: str,
    features: Any,
    snapshot_hash: str,
    image_root: Path | None,
    ds_name: str,
    batch_rows: int,
    batch_bytes: int,
    columns_of: Callable[[Any, dict[str, Any], dict[str, Any], int], dict[str, Any]],
) -> dict[str, Any]:
    """`out_dir/file_name`: one release row per pair (`columns_of(pair, image, release fields, position)`),
    images embedded, written in batches of at most `batch_rows` rows or `batch_bytes` of images, and the
    manifest. Shared by the RLHF-V and RLAIF-V writers; `rows` are `PairRow`s."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir = prepare_out_dir(out_dir)
    schema = features.arrow_schema
    images = ImageCopier(out_dir, image_root=image_root)
    fields = ReleaseFields(ds_name=ds_name)
    sources: Counter = Counter()
    seen_images: set[str] = set()
    count = 0
    batch: list[dict[str, Any]] = []
    held = 0
    with pq.ParquetWriter(out_dir / file_name, schema) as writer:
        for pair in rows:
            image = release_image(images, pair, format_name=format_name)
            held += len(image["bytes"])
            seen_images.add(pair.image)
            batch.append(columns_of(pair, image, fields.of(pair, position=count), count))
            sources[pair.source] += 1
            count += 1
            if len(batch) >= batch_rows or held >= batch_bytes:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch, held = [], 0
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return write_manifest(
        out_dir,
        format_name=format_name,
        snapshot_hash=snapshot_hash,
        counts={"rows": count, "images": len(seen_images), "by_source": dict(sorted(sources.items()))},
        files=[file_name],
    )


class ReleaseFields:
    """The provenance columns of an export row: the item's own release fields where its import kept them,
    else Loupe's (`ds_name`, `origin_dataset` "loupe", `origin_split` the pair's source, margin, agreement,
    votes and item key as JSON, `idx` the row's position, `image_path` Loupe's stored image).

    An item's release `idx` goes to its first pair only (rows of one item come together), so a re-import,
    which takes `idx` as the item's id, does not meet it twice.
    """

    def __init__(self, *, ds_name: str) -> None:
        self.ds_name = ds_name
        self._last_item: str | None = None

    def of(self, pair: Any, *, position: int) -> dict[str, Any]:
        kept = pair.meta.get("provenance") or {}
        origin = {
            "item_key": pair.item_key,
            "source": pair.source,
            "margin": pair.margin,
            "agreement": pair.agreement,
            "n_votes": pair.n_votes,
        }
        first_of_item = pair.item_key != self._last_item
        self._last_item = pair.item_key
        return {
            "ds_name": kept.get("ds_name", self.ds_name),
            "origin_dataset": kept.get("origin_dataset", "loupe"),
            "origin_split": kept.get("origin_split", json.dumps(origin, ensure_ascii=False)),
            "idx": kept["idx"] if "idx" in kept and first_of_item else position,
            "image_path": kept.get("image_path", pair.image or ""),
        }
