"""Template filters: stored settings shown as people write them (JSON), not as Python prints them; times
as people say them."""

import json
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from loupe.failures import failure_cause_in, log_for_users

register = template.Library()


@register.filter
def as_json(value: Any, indent: int | None = 2) -> str:
    """`value` as JSON (indented by default; `|as_json:0` on one line), for configs, filters and params.
    Autoescaping still applies, so it is safe in HTML."""
    return json.dumps(value, indent=indent or None, ensure_ascii=False, sort_keys=False, default=str)


@register.filter
def users_log(log: str) -> str:
    """A job's log without tracebacks or server paths (loupe.failures.log_for_users); staff see it whole in
    the admin."""
    return log_for_users(log or "")


@register.filter
def failure_line(log: str) -> str:
    """Why a job failed, in one line: its `[loupe] failed:` line, else the last line users may see."""
    shown = log_for_users(log or "")
    return failure_cause_in(shown) or next((line for line in reversed(shown.splitlines()) if line.strip()), "")


@register.filter
def ago(moment: datetime | None) -> str:
    """ "just now" within a minute, else "3 minutes ago", "2 days, 4 hours ago" (Django's timesince)."""
    if moment is None:
        return ""
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment)} ago"
