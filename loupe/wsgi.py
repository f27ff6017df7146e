"""WSGI entry point (gunicorn loupe.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loupe.settings.base")
application = get_wsgi_application()
