"""Login throttling: after `LOUPE_LOGIN_MAX_FAILURES` failed logins for one username from one address within
`LOUPE_LOGIN_WINDOW_SECONDS`, further logins for that pair are refused (429 with the time to wait) until the
window ends, whatever the password. A successful login clears the count.

Counts live in Django's cache (settings `CACHES`: a folder shared by every process on the machine, or Redis
with `LOUPE_CACHE_URL`), so every web worker process sees the same count. Failures are counted from Django's
`user_login_failed` signal, so every form that logs in (Loupe's page, the admin's) counts; the middleware
answers the login pages, and the authentication backend refuses a blocked pair wherever else
`authenticate()` is called."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

LOGIN_PATHS = ("/login/", "/admin/login/")


def client_address(request: HttpRequest) -> str:
    """The client's address: `REMOTE_ADDR`, or the header a trusted proxy sets (`LOUPE_CLIENT_IP_HEADER`,
    e.g. HTTP_X_REAL_IP) when Loupe runs behind one."""
    header = settings.LOUPE_CLIENT_IP_HEADER
    value = request.META.get(header, "") if header else ""
    return (value.split(",")[0].strip() if value else "") or request.META.get("REMOTE_ADDR", "") or "unknown"


def _key(*, username: str, address: str) -> str:
    digest = hashlib.sha256(f"{username.strip().casefold()}\0{address}".encode()).hexdigest()
    return f"loupe-login-failures:{digest}"


def login_blocked_seconds(*, username: str, address: str) -> int:
    """How many seconds logins for `username` from `address` stay refused; 0 when they are allowed."""
    entry = cache.get(_key(username=username, address=address))
    if not entry or entry["count"] < settings.LOUPE_LOGIN_MAX_FAILURES:
        return 0
    return max(0, math.ceil(entry["until"] - time.time()))


def login_failure_record(*, username: str, address: str) -> None:
    """Count a failed login; the window starts at the first failure and is not extended by later ones."""
    key, now = _key(username=username, address=address), time.time()
    entry = cache.get(key)
    if not entry or entry["until"] <= now:
        entry = {"count": 0, "until": now + settings.LOUPE_LOGIN_WINDOW_SECONDS}
    entry["count"] += 1
    cache.set(key, entry, timeout=max(1, math.ceil(entry["until"] - now)))


def _username(credentials: dict[str, Any]) -> str:
    return str(credentials.get("username") or "")


@receiver(user_login_failed)
def _count_failed_login(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any) -> None:
    if request is not None and _username(credentials):
        login_failure_record(username=_username(credentials), address=client_address(request))


@receiver(user_logged_in)
def _clear_failed_logins(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    if request is not None:
        cache.delete(_key(username=user.get_username(), address=client_address(request)))


class ThrottledModelBackend(ModelBackend):
    """Django's backend, refusing a username and address pair that is blocked (any password)."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None, **kwargs: Any) -> Any:
        if (
            request is not None
            and username
            and login_blocked_seconds(username=username, address=client_address(request))
        ):
            raise PermissionDenied("Too many failed logins.")  # stops every backend
        return super().authenticate(request, username=username, **kwargs)


class LoginThrottleMiddleware:
    """Answers a login POST for a blocked username and address with 429 and when to try again."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path in LOGIN_PATHS:
            username = request.POST.get("username", "")
            seconds = login_blocked_seconds(username=username, address=client_address(request)) if username else 0
            if seconds:
                minutes = max(1, math.ceil(seconds / 60))
                message = (
                    f"Too many failed logins for {username!s} from your address: try again in "
                    f"{minutes} minute{'s' if minutes != 1 else ''}."
                )
                page = render_to_string(
                    "registration/login.html",
                    {"blocked": message, "username": username, "next": request.POST.get("next", "")},
                    request=request,
                )
                response = HttpResponse(page, status=429)
                response["Retry-After"] = str(seconds)
                return response
        return self.get_response(request)
