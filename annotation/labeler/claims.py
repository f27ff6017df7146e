"""Dividing an answer into atomic claims, and turning a claim into a yes/no question, without a model.

RLAIF-V divides with a prompted model; this deterministic splitter is the offline default and the fallback
when a model's division does not parse. It splits sentences (not after abbreviations or inside decimals),
then clauses at ";" and at ", and" / ", but" / ", while" / ", whereas", and a list introduced by a colon
("There are three objects: a red circle on the left, a blue square and a star.") into its head and one claim
per item. Every claim keeps its character span in the answer, so a page can highlight the rejected ones.

``question_from_claim`` is the template fallback of the question step: "There are X" → "Are there X?", a noun
phrase → "Is there NP in the image?", "A man is riding" → "Is a man riding?", "The image shows X" → "Does the
image show X?", anything else → "Is it true that ...?".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words after which a full stop does not end a sentence ("e.g. a cat", "Dr. Smith", "vs. the dog").
_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "st", "no", "fig", "approx", "cf"})
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_CLAUSE_BREAK = re.compile(r";\s+|,\s+(?:and|but|while|whereas)\s+")
_LIST_BREAK = re.compile(r",\s+(?:and\s+)?|\s+and\s+")
_TRIM = " \t\n,;:.!?\"'"

# An opening phrase a question does without ("In the image, a man is riding" asks "Is a man riding ...?").
_INTRO = re.compile(
    r"^(?:(?:in|on|at|from|within)\b[^,]{0,40}|yes|no|overall|also|additionally|moreover|however),\s+", re.IGNORECASE
)
_NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "several", "many", "some")
_INDEFINITE = ("a", "an", "one", "another", *_NUMBER_WORDS)  # what "Is there ...?" can ask about
_DETERMINERS = ("the", "this", "that", "these", "those", *_INDEFINITE)
_PLACE = re.compile(r"\b(?:in|on|at|near|next to|behind|above|below|under|beside|between|inside)\b", re.IGNORECASE)
_AUXILIARIES = ("is", "are", "was", "were", "can", "could", "will", "would", "has been", "have been")
# Third-person verbs a description opens with, and the base form a "Does ...?" question needs.
_VERB_BASES = {
    "shows": "show",
    "depicts": "depict",
    "contains": "contain",
    "features": "feature",
    "includes": "include",
    "displays": "display",
    "has": "have",
    "holds": "hold",
    "wears": "wear",
}
_FINITE_VERB = re.compile(
    r"\b(?:"
    + "|".join([*(a for a in _AUXILIARIES if " " not in a), *_VERB_BASES, "has", "have", "do", "does"])
    + r")\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Claim:
    """One atomic claim: its text and, where it was found in the answer, its span ``[start, end)``."""

    text: str
    start: int | None = None
    end: int | None = None


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` narrowed past surrounding spaces and punctuation."""
    while start < end and text[start] in _TRIM:
        start += 1
    while end > start and text[end - 1] in _TRIM:
        end -= 1
    return start, end


def _sentences(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences of ``text``; a line (a bullet, a list item) ends a sentence too."""
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text):
        bullet = _BULLET.match(line.group())
        cursor = line.start() + (bullet.end() if bullet else 0)
        for end in _SENTENCE_END.finditer(text, cursor, line.end()):
            word = re.search(r"(\S+)$", text[cursor : end.start()])
            if word and word.group(1).lower().lstrip("(") in _ABBREVIATIONS and end.group() == ".":
                continue  # "e.g. a cat": the sentence goes on
            spans.append((cursor, end.end()))
            cursor = end.end()
        spans.append((cursor, line.end()))
    return [s for s in (_trimmed(text, a, b) for a, b in spans) if s[1] > s[0]]


def _split_at(text: str, start: int, end: int, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    spans, cursor = [], start
    for match in pattern.finditer(text, start, end):
        spans.append((cursor, match.start()))
        cursor = match.end()
    spans.append((cursor, end))
    return [s for s in (_trimmed(text, a, b) for a, b in spans) if s[1] > s[0]]


def _colon_list(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A clause "head: item, item and item" as the head and one span per item; other clauses unchanged."""
    colon = text.find(":", start, end)
    if colon < 0:
        return [(start, end)]
    head = _trimmed(text, start, colon)
    items = _split_at(text, colon + 1, end, _LIST_BREAK)
    return ([head] if head[1] > head[0] else []) + items


def split_claims(text: str) -> list[Claim]:
    """The atomic claims of an answer, in order, each with its span in ``text`` (see the module docstring)."""
    claims: list[Claim] = []
    for sentence in _sentences(text):
        for clause in _split_at(text, *sentence, _CLAUSE_BREAK):
            for start, end in _colon_list(text, *clause):
                claims.append(Claim(text=text[start:end], start=start, end=end))
    return claims


def claims_parse(output: str, *, answer: str) -> list[Claim] | None:
    """Claims a model wrote one per line (bullets or numbers allowed), located in ``answer`` where they occur
    verbatim; None when the output does not parse as such a list (empty, or more lines than the answer has
    words: the model wrote something else), so the caller falls back to ``split_claims``."""
    lines = [_BULLET.sub("", line).strip().strip('"') for line in output.splitlines()]
    lines = [line for line in lines if line]
    if not lines or len(lines) > max(1, len(answer.split())):
        return None
    claims = []
    for line in lines:
        text = line.rstrip(".")
        found = answer.find(text)
        claims.append(Claim(text=text, start=found, end=found + len(text)) if found >= 0 else Claim(text=text))
    return claims


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lowered_subject(text: str) -> str:
    """``text`` with its first word lower-cased when that word is a determiner or pronoun (not a name)."""
    first = text.split(" ", 1)[0]
    if first.lower() in (*_DETERMINERS, "it", "there", "he", "she", "they"):
        return first.lower() + text[len(first) :]
    return text


def question_from_claim(claim: str) -> str:
    """A yes/no question whose answer "yes" means the claim holds (see the module docstring for the forms)."""
    text = _INTRO.sub("", claim.strip().rstrip(".!?;:, "))
    words = text.split()
    if not words:
        raise ValueError("an empty claim has no question")
    first = words[0].lower()
    there = re.match(r"there\s+(is|are|was|were)\s+(.+)$", text, re.IGNORECASE)
    if there:
        verb, rest = there.groups()
        return f"{verb.capitalize()} there {rest}?"
    if first in _INDEFINITE and not _FINITE_VERB.search(text):  # a noun phrase: "a red circle on the left"
        verb = "Are" if first in _NUMBER_WORDS else "Is"
        where = "" if _PLACE.search(text) else " in the image"
        return f"{verb} there {_lowered_subject(text)}{where}?"
    for auxiliary in _AUXILIARIES:  # "a man is riding a horse" -> "Is a man riding a horse?"
        match = re.search(rf"\s{auxiliary}\s", text, re.IGNORECASE)
        if match and len(text[: match.start()].split()) <= 6:
            subject, rest = text[: match.start()], text[match.end() :]
            head, _, tail = auxiliary.partition(" ")
            rest = f"{tail} {rest}" if tail else rest
            return f"{head.capitalize()} {_lowered_subject(subject)} {rest}?"
    for verb, base in _VERB_BASES.items():  # "The image shows a cat" -> "Does the image show a cat?"
        match = re.search(rf"\s{verb}\s", text, re.IGNORECASE)
        if match and len(text[: match.start()].split()) <= 6:
            return f"Does {_lowered_subject(text[: match.start()])} {base} {text[match.end() :]}?"
    return f"Is it true that {_lowered_subject(text)}?"


def question_parse(output: str) -> str | None:
    """The question a model wrote: its first non-empty line, if it ends with "?" and is not rambling (at most
    40 words); None otherwise, so the caller falls back to ``question_from_claim``."""
    line = next((line.strip() for line in output.splitlines() if line.strip()), "")
    line = re.sub(r"^(?:question|q)\s*:\s*", "", line, flags=re.IGNORECASE).strip().strip('"')
    if not line.endswith("?") or len(line.split()) > 40:
        return None
    return _capitalised(line)
