"""One place that reads the environment, so behaviour changes only through environment variables."""

import json
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value in (None, "") else float(value)


def env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).resolve() if value else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [part.strip() for part in value.split(",") if part.strip()]


def env_dict(name: str, default: dict[str, str]) -> dict[str, str]:
    """A JSON object of strings, e.g. LOUPE_REWARD_FUNCTIONS='{"brevity": "my_rewards:brevity"}'."""
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be a JSON object of names to strings: {error}") from error
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise ImproperlyConfigured(f"{name} must be a JSON object of names to strings, not {value!r}")
    return parsed


def demo_secret_key(path: Path, *, create: bool) -> str:
    """The secret key the embedded demo generated into its data folder (`path`), created once when `create`.

    There is no built-in key: a public default would let anyone sign sessions, password-reset links and
    cookies. Outside the demo, a missing DJANGO_SECRET_KEY stops the start with the way to fix it; a data
    folder the demo already set up keeps working with its own random key (CLI commands after demo.sh)."""
    if path.is_file():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
    if not create:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random value, e.g. "
            "`export DJANGO_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))')`, "
            "or run the embedded demo (platform/demo.sh, or LOUPE_DEMO=1), which generates one into "
            f"{path.parent}."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    # Exclusive create, owner-only: two processes starting at once keep the first key, nobody else reads it.
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return demo_secret_key(path, create=False)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(key + "\n")
    return key
