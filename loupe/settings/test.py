"""Settings for the test suite: the same as production-like `base`, with a throwaway data directory.

The SQLite test database is a file, not `:memory:`, because the tests start real Celery worker processes
that must see the same rows.
"""

import json
import os
import secrets
import tempfile
from pathlib import Path

os.environ.setdefault("LOUPE_DATA_DIR", tempfile.mkdtemp(prefix="loupe-test-"))
# Tests talk plain HTTP to the test client, live servers and the web process: no HTTPS redirect, HSTS or secure-only
# cookies (tests/test_deploy_settings.py checks them with the production defaults).
os.environ.setdefault("LOUPE_HTTPS", "0")
# A random key per test session, inherited by the worker and server processes the tests start.
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
# The scorers the tests train with, registered as an admin registers reward functions (in the environment,
# so plain-Python child processes, e.g. torchrun's, see the same registry).
os.environ.setdefault(
    "LOUPE_REWARD_FUNCTIONS",
    json.dumps(
        {
            "word_count": "tests.training.scorers:word_count",
            "recording": "tests.training.scorers:recording",
            "mentions_red": "tests.training.scorers:mentions_red",
        }
    ),
)

from loupe.settings.base import *  # noqa: E402, F403
from loupe.settings.base import DATA_DIR, DATABASES  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(Path(DATA_DIR) / "test-loupe.sqlite3")}
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # noqa: F405 (whitenoise warns without it)
# Pages name static files unhashed, served from the finders by the live server, so no test needs collectstatic
# first; tests/browser/test_static_files.py collects with the production storage and checks what WhiteNoise serves.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
