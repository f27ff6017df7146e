"""Checks for the segments of a correction (RLHF-V), in plain Python (no Django).

An annotator marks spans of a model answer as hallucinated and types a replacement for each. The browser
sends character offsets; the server trusts none of them: every segment is checked against the stored text
(offsets inside it, the `original` the annotator saw equal to the stored characters, a known type, no
overlap) and the corrected text is computed here, never taken from the client.

Offsets are Python string indexes (code points), half-open `[start, end)`; the page converts its UTF-16
positions to code points before sending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_SEGMENTS = 200
MAX_REPLACEMENT_CHARS = 2000


class SegmentError(ValueError):
    """A segment the server refuses; `index` is its position in the list the client sent."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


@dataclass(frozen=True)
class CheckedCorrection:
    segments: list[dict[str, Any]]  # sorted by start: {"start", "end", "type", "replacement", "original"}
    corrected_text: str

    @property
    def no_hallucination(self) -> bool:
        return not self.segments


def _int_field(segment: dict[str, Any], key: str, index: int) -> int:
    value = segment.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SegmentError(f"Segment {index + 1}: '{key}' must be a whole number.", index=index)
    return value


def _str_field(segment: dict[str, Any], key: str, index: int) -> str:
    value = segment.get(key)
    if not isinstance(value, str):
        raise SegmentError(f"Segment {index + 1}: '{key}' must be text.", index=index)
    return value


def correction_check(*, text: str, segments: Sequence[Any], types: Sequence[str]) -> CheckedCorrection:
    """Validate `segments` over `text` and compute the corrected text.

    Each segment is `{"start", "end", "type", "replacement", "original"}`: a non-empty span of `text`
    whose characters equal `original`, a type from `types`, and a replacement that differs from the
    span (an empty replacement deletes it). Segments may touch but not overlap. No segments means the
    answer has no hallucination: the corrected text is the text itself.
    """
    if not isinstance(segments, (list, tuple)):
        raise SegmentError("Segments must be a list.")
    if len(segments) > MAX_SEGMENTS:
        raise SegmentError(f"At most {MAX_SEGMENTS} segments per answer.")
    checked: list[tuple[int, dict[str, Any]]] = []
    for index, segment in enumerate(segments):
        if not isinstance(segment, dict):
            raise SegmentError(f"Segment {index + 1} must be an object.", index=index)
        start, end = _int_field(segment, "start", index), _int_field(segment, "end", index)
        kind = _str_field(segment, "type", index)
        replacement = _str_field(segment, "replacement", index)
        original = _str_field(segment, "original", index)
        if not 0 <= start < end <= len(text):
            raise SegmentError(
                f"Segment {index + 1} ({start}, {end}) is not a non-empty span of the answer ({len(text)} characters).",
                index=index,
            )
        if text[start:end] != original:
            raise SegmentError(
                f"Segment {index + 1} does not match the answer: characters {start}..{end} are "
                f"{text[start:end]!r}, not {original!r}. Reload the task.",
                index=index,
            )
        if kind not in types:
            raise SegmentError(f"Segment {index + 1} has the unknown type {kind!r}.", index=index)
        if len(replacement) > MAX_REPLACEMENT_CHARS:
            raise SegmentError(
                f"Segment {index + 1}: the replacement is longer than {MAX_REPLACEMENT_CHARS} characters.",
                index=index,
            )
        if replacement == original:
            raise SegmentError(f"Segment {index + 1}: the replacement is the same as the marked text.", index=index)
        checked.append(
            (index, {"start": start, "end": end, "type": kind, "replacement": replacement, "original": original})
        )
    checked.sort(key=lambda pair: (pair[1]["start"], pair[1]["end"]))
    pieces: list[str] = []
    cursor = 0
    previous: tuple[int, dict[str, Any]] | None = None
    for index, segment in checked:
        if previous is not None and segment["start"] < previous[1]["end"]:
            raise SegmentError(
                f"Segments {previous[0] + 1} and {index + 1} overlap; a character belongs to one segment at most.",
                index=index,
            )
        pieces.append(text[cursor : segment["start"]])
        pieces.append(segment["replacement"])
        cursor = segment["end"]
        previous = (index, segment)
    pieces.append(text[cursor:])
    return CheckedCorrection(segments=[segment for _, segment in checked], corrected_text="".join(pieces))
