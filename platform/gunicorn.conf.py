"""gunicorn settings for Loupe's web process (the demo and production use the same file)."""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("LOUPE_WEB_THREADS", "4"))
worker_class = "gthread"
timeout = 120
accesslog = os.environ.get("LOUPE_ACCESS_LOG") or None
errorlog = "-"
