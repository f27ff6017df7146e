"""Settings for the test suite: the same as production-like `base`, with a throwaway data directory.

The SQLite test database is a file, not `:memory:`, because the tests start real Celery worker processes
that must see the same rows.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("LOUPE_DATA_DIR", tempfile.mkdtemp(prefix="loupe-test-"))

from loupe.settings.base import *  # noqa: E402, F403
from loupe.settings.base import DATA_DIR, DATABASES  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(Path(DATA_DIR) / "test-loupe.sqlite3")}
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # noqa: F405 (whitenoise warns without it)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
