"""Anonymous crowd participants of public projects (New Yorker-style rating needs no account).

A participant is an inactive Django user with an unusable password (it can never log in, through any
form, token or admin) plus a `CrowdParticipant` row. The browser holds a cookie "<user id>.<random token>";
only the token's SHA-256 is stored, and `participant_from_cookie` compares it in constant time, so a cookie
cannot be guessed or forged, even by someone who knows the server's SECRET_KEY or a participant's id, and
it only ever names a participant account, never anyone else. Assignments and ratings then live in the
same tables as members'.
New participants per address and hour are limited (`LOUPE_CROWD_SIGNUPS_PER_HOUR`), so clearing cookies
to dodge the per-participant quota is slow.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import CrowdParticipant, Project, Visibility
from annotation.services.queue import RateLimited
from loupe.errors import ApplicationError

PARTICIPANT_COOKIE = "loupe_participant"
COOKIE_MAX_AGE = 365 * 24 * 3600


def address_hash(address: str) -> str:
    """A keyed hash of a client address: counts sign-ups per address without storing the address."""
    return hmac.new(settings.SECRET_KEY.encode(), address.encode(), hashlib.sha256).hexdigest()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewParticipant:
    """A participant just created, with the value of its cookie (its token exists nowhere else)."""

    user: AbstractBaseUser
    cookie_value: str


@transaction.atomic
def participant_create(*, project: Project, address: str) -> NewParticipant:
    """A new anonymous participant who came to `project` (which must be public) from `address`."""
    if project.visibility != Visibility.PUBLIC:
        raise ApplicationError("This project is not open to the public.")
    hashed = address_hash(address)
    limit = getattr(settings, "LOUPE_CROWD_SIGNUPS_PER_HOUR", 30)
    recent = CrowdParticipant.objects.filter(address_hash=hashed, created_at__gt=timezone.now() - timedelta(hours=1))
    if limit and recent.count() >= limit:
        raise RateLimited("Too many new participants from this address; try again in an hour.")
    user_model = get_user_model()
    user = user_model(username=f"crowd-{secrets.token_hex(8)}", is_active=False)
    user.set_unusable_password()
    user.save()
    token = secrets.token_urlsafe(32)
    CrowdParticipant.objects.create(
        user=user, first_project=project, address_hash=hashed, token_hash=_token_hash(token)
    )
    return NewParticipant(user=user, cookie_value=f"{user.pk}.{token}")


def participant_from_cookie(value: str | None) -> AbstractBaseUser | None:
    """The participant a cookie names, or None for a missing or wrong cookie, an old signed one, or one
    that names an account that is not a crowd participant."""
    if not value or len(value) > 200:
        return None
    user_id, _, token = value.partition(".")
    if not user_id.isascii() or not user_id.isdigit() or not token:
        return None
    participant = CrowdParticipant.objects.select_related("user").filter(user_id=int(user_id)).first()
    if participant is None or not participant.token_hash or participant.user.is_active:
        return None
    if not hmac.compare_digest(participant.token_hash, _token_hash(token)):
        return None
    return participant.user
