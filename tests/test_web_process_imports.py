"""The web process stays light: loading every URL, view, API, admin and service module imports no torch,
transformers or trl (seconds of start-up and hundreds of MB per web worker)."""

import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("torch", "transformers", "trl", "peft", "datasets")


def test_the_web_side_imports_no_ml_framework():
    """Importing the URL map (all views and APIs), the admin and the services leaves torch & co unloaded."""
    code = (
        "import os, sys, django\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'loupe.settings.test'\n"
        "django.setup()\n"
        "from django.urls import get_resolver; get_resolver().url_patterns\n"
        "import django.contrib.admin; django.contrib.admin.autodiscover()\n"
        "import annotation.services, training.services, loupe.wsgi\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
