"""Limits on JSON values that keep bad input a clear error, never a crash or an unstorable row (plain Python).

Python's json module turns `1e400` into infinity, nests until the interpreter's recursion limit (a
RecursionError), and accepts `\\ud800` (a lone surrogate that no database can store) and `\\u0000` (NUL,
which PostgreSQL refuses in text). The API's parser (`loupe.parsers`) and the import checks refuse each of
them, naming where it is.
"""

import json
import math
from dataclasses import fields
from typing import Any

MAX_JSON_DEPTH = 32


def json_text_problem(text: str) -> str | None:
    """Why `text` cannot be stored as text (a NUL character or a lone surrogate), or None."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"contains a lone surrogate (\\u{ord(text[error.start]):04x}) at character {error.start}"
    return None


def json_value_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a parsed JSON value cannot be taken (too deep, a bad string or key, a non-finite number), naming
    where it is (`$.a[2].b`), or None. Walks without recursion, so a deep value cannot overflow the stack."""
    stack: list[tuple[Any, str, int]] = [(value, "$", 1)]
    while stack:
        current, where, depth = stack.pop()
        if isinstance(current, dict | list | tuple) and depth > max_depth:
            return f"{where} is nested deeper than {max_depth} levels"
        if isinstance(current, dict):
            for key, child in current.items():
                if not isinstance(key, str):
                    return f"a key of {where} is not text"
                problem = json_text_problem(key)
                if problem:
                    return f"a key of {where} {problem}"
                stack.append((child, f"{where}.{key[:40]}", depth + 1))
        elif isinstance(current, list | tuple):
            stack.extend((child, f"{where}[{n}]", depth + 1) for n, child in enumerate(current))
        elif isinstance(current, str):
            problem = json_text_problem(current)
            if problem:
                return f"{where} {problem}"
        elif isinstance(current, float) and not math.isfinite(current):
            return f"{where} is not a finite number"
        elif not (current is None or isinstance(current, bool | int | float)):
            # Readers of binary formats (Parquet) can hand over bytes, dates, decimals: not JSON.
            return f"{where} is not a JSON value (a {type(current).__name__})"
    return None


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise ValueError(f"the number {literal[:40]} is out of range")
    return number


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def json_loads_checked(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` that raises ValueError for everything `json_value_problem` names, for NaN/Infinity and
    out-of-range numbers, and for nesting deep enough to exhaust the parser's recursion."""
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError as error:
        raise ValueError(f"nested deeper than {max_depth} levels") from error
    problem = json_value_problem(value, max_depth=max_depth)
    if problem:
        raise ValueError(problem)
    return value


# Bounds that keep a setting's numbers meaningful and storable (TrainingRun.max_steps is a 32-bit column).
MAX_SETTING_INT = 2**31 - 1
MAX_SETTING_FLOAT = 1e9


def dataclass_types_check(config: object) -> None:
    """Every field of a settings dataclass (a training or labeler config) holds a value of its declared type
    (ValueError whose message starts with the field's name):
    `max_steps: 2.5` or `"20"` is refused here, before a run is queued, not in the worker; numbers must be
    finite and within bounds (`1e300` steps or an infinite learning rate are refused); texts must be
    storable (no NUL, no lone surrogate)."""
    for spec in fields(config):  # type: ignore[arg-type]
        name, value = spec.name, getattr(config, spec.name)
        # The annotation as written ("int | None"), whether the module postpones annotations or not.
        declared = (spec.type.__name__ if isinstance(spec.type, type) else str(spec.type)).replace(" ", "")
        if declared.endswith("|None"):
            if value is None:
                continue
            declared = declared.removesuffix("|None")
        if declared == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, not {value!r:.40}")
        elif declared == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, not {value!r:.40}")
            if abs(value) > MAX_SETTING_INT:
                raise ValueError(f"{name} must be at most {MAX_SETTING_INT} in size, not {value:.3g}")
        elif declared == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, not {value!r:.40}")
            if not math.isfinite(value) or abs(value) > MAX_SETTING_FLOAT:
                raise ValueError(
                    f"{name} must be a finite number of at most {MAX_SETTING_FLOAT:g} in size, not {value:.3g}"
                )
        elif declared == "str":
            if not isinstance(value, str):
                raise ValueError(f"{name} must be text, not {value!r:.40}")
            _storable_text(name, value)
        elif declared == "list[str]":
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ValueError(f"{name} must be a list of texts")
            for item in value:
                _storable_text(name, item)


def _storable_text(name: str, value: str) -> None:
    if "\x00" in value:
        raise ValueError(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} contains a lone surrogate") from None
