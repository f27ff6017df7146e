"""Anonymous crowd participants of public projects (New Yorker-style rating needs no account).

A participant is an inactive Django user with an unusable password (it can never log in, through any
form, token or admin) plus a `CrowdParticipant` row. The browser holds a signed cookie naming that user;
`participant_from_cookie` turns it back into the user, and only for participant accounts, so a stolen or
forged value cannot become anyone else. Assignments and ratings then live in the same tables as members'.
New participants per address and hour are limited (`LOUPE_CROWD_SIGNUPS_PER_HOUR`), so clearing cookies
to dodge the per-participant quota is slow.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.db import transaction
from django.utils import timezone

from annotation.models import CrowdParticipant, Project, Visibility
from annotation.services.queue import RateLimited
from loupe.errors import ApplicationError

PARTICIPANT_COOKIE = "loupe_participant"
_SALT = "loupe.crowd-participant"
COOKIE_MAX_AGE = 365 * 24 * 3600


def address_hash(address: str) -> str:
    """A keyed hash of a client address: counts sign-ups per address without storing the address."""
    return hmac.new(settings.SECRET_KEY.encode(), address.encode(), hashlib.sha256).hexdigest()


@transaction.atomic
def participant_create(*, project: Project, address: str) -> AbstractBaseUser:
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
    CrowdParticipant.objects.create(user=user, first_project=project, address_hash=hashed)
    return user


def participant_cookie_value(user: AbstractBaseUser) -> str:
    return signing.dumps({"user": user.pk}, salt=_SALT, compress=True)


def participant_from_cookie(value: str | None) -> AbstractBaseUser | None:
    """The participant a cookie names, or None for a missing, forged or expired cookie, or one that names
    an account that is not a crowd participant."""
    if not value:
        return None
    try:
        data = signing.loads(value, salt=_SALT, max_age=COOKIE_MAX_AGE)
    except signing.BadSignature:
        return None
    user_id = data.get("user") if isinstance(data, dict) else None
    if not isinstance(user_id, int):
        return None
    participant = CrowdParticipant.objects.select_related("user").filter(user_id=user_id).first()
    if participant is None or participant.user.is_active:
        return None
    return participant.user
