"""The Celery application. Configuration comes from Django settings (`CELERY_*`)."""

import logging
import os
from pathlib import Path

from celery import Celery
from celery.signals import import_modules
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loupe.settings.base")
# The embedded broker's URL (filesystem://) names Loupe's filesystem transport, which writes whole messages
# only: kombu's own lets a worker read a half-written one and stop (loupe.broker says how).
TRANSPORT_ALIASES["filesystem"] = "loupe.broker:Transport"

app = Celery("loupe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["annotation", "training", "evaluation"])


class _FilesystemHostnameFilter(logging.Filter):
    """Drops kombu's "No hostname was supplied. Reverting to default 'localhost'" for the embedded
    filesystem broker, whose URL has no host by nature: every command that queued a task printed it. For a
    network broker (redis:// without a host) the warning says something true and stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("No hostname was supplied"):
            return True
        return not str(app.conf.broker_url or "").startswith("filesystem://")


logging.getLogger("kombu.connection").addFilter(_FilesystemHostnameFilter())


def broker_folders_create() -> None:
    """The embedded filesystem broker needs its folders before the first message is sent or read."""
    from django.conf import settings

    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if key in options:
            Path(options[key]).mkdir(parents=True, exist_ok=True)


@import_modules.connect
def _broker_folders_on_worker_start(**_: object) -> None:
    broker_folders_create()
