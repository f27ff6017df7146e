"""Settings for every Loupe deployment.

Everything that differs between a laptop and production comes from environment variables (see
`platform/loupe.env.example`): with none set, Loupe runs embedded — SQLite, a Celery broker on the local
filesystem that needs no server, media on local disk. `DATABASE_URL` switches to PostgreSQL and
`CELERY_BROKER_URL` to Redis.
"""

from pathlib import Path

import dj_database_url

from loupe.csp import DEFAULT_POLICY as DEFAULT_CSP
from loupe.env import demo_secret_key, env_bool, env_dict, env_float, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = env_path("LOUPE_DATA_DIR", BASE_DIR / "var")

# The embedded demo (`platform/demo.sh` sets LOUPE_DEMO=1) runs without configuration.
LOUPE_DEMO = env_bool("LOUPE_DEMO", False)
SECRET_KEY_FILE = DATA_DIR / "secret_key"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "").strip() or demo_secret_key(SECRET_KEY_FILE, create=LOUPE_DEMO)
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# HTTPS. Outside the embedded demo and DEBUG, Loupe is taken to be served over HTTPS (`check --deploy` is clean):
# plain HTTP is redirected, browsers are told to use HTTPS only (HSTS, a year), cookies are sent over HTTPS
# only. LOUPE_HTTPS=0 turns all of it off (a deployment on plain HTTP inside a private network); each
# DJANGO_* switch below sets one setting. Behind a proxy that terminates TLS, DJANGO_SECURE_PROXY_SSL_HEADER=1
# trusts its X-Forwarded-Proto (set it only there: a client could send the header itself).
LOUPE_HTTPS = env_bool("LOUPE_HTTPS", not LOUPE_DEMO and not DEBUG)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", LOUPE_HTTPS)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 365 * 24 * 3600 if LOUPE_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", LOUPE_HTTPS)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", LOUPE_HTTPS)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", LOUPE_HTTPS)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", LOUPE_HTTPS)
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content-Security-Policy of every response (loupe.csp): scripts from Loupe's own origin only.
LOUPE_CSP = env_str("LOUPE_CSP", DEFAULT_CSP)
# Login throttling (loupe.login_throttle): this many failed logins for one username from one address within
# the window block that pair until the window ends. Behind a proxy, LOUPE_CLIENT_IP_HEADER names the header
# holding the client's address (e.g. HTTP_X_REAL_IP); otherwise every client shares the proxy's address.
LOUPE_LOGIN_MAX_FAILURES = env_int("LOUPE_LOGIN_MAX_FAILURES", 5)
LOUPE_LOGIN_WINDOW_SECONDS = env_int("LOUPE_LOGIN_WINDOW_SECONDS", 15 * 60)
LOUPE_CLIENT_IP_HEADER = env_str("LOUPE_CLIENT_IP_HEADER", "")
AUTHENTICATION_BACKENDS = ["loupe.login_throttle.ThrottledModelBackend"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "annotation",
    "training",
    "evaluation",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "loupe.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "loupe.login_throttle.LoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it sees the views' exceptions first: a database that is down is a 503, not a 500.
    "loupe.database_unavailable.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "loupe.urls"
WSGI_APPLICATION = "loupe.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite gets WAL, IMMEDIATE transactions and a long busy timeout: with those, concurrent writers from the
# web server and the worker wait for each other instead of failing with "database is locked"
# (stack-notes: 0 errors of 600 in a 4-process stress test, against 46 with the defaults).
_SQLITE_OPTIONS = {
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'loupe.sqlite3'}"),
        conn_max_age=env_int("LOUPE_DB_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = _SQLITE_OPTIONS
    # Connections persist across requests (CONN_MAX_AGE above): closing SQLite's last connection after every
    # request checkpoints and deletes the WAL file, which cost 10-30 ms per request in the throughput bench.
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The cache holds login-failure counts (loupe.login_throttle), so every process must see the same one: a folder
# on this machine by default, Redis with LOUPE_CACHE_URL=redis://… (several machines).
_CACHE_URL = env_str("LOUPE_CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _CACHE_URL}
        if _CACHE_URL
        else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(DATA_DIR / "cache")}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env_path("LOUPE_STATIC_ROOT", DATA_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]
# plotly.min.js is served from the plotly wheel itself (found without importing plotly), not copied into the repo.
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "loupe.staticfiles.PlotlyFinder",
]
MEDIA_URL = "/media/"
MEDIA_ROOT = env_path("LOUPE_MEDIA_ROOT", DATA_DIR / "media")
# Model weights, snapshots and exports live beside media, never under it: media is served to browsers.
MODELS_DIR = env_path("LOUPE_MODELS_DIR", DATA_DIR / "models")
SNAPSHOTS_DIR = env_path("LOUPE_SNAPSHOTS_DIR", DATA_DIR / "snapshots")
EXPORTS_DIR = env_path("LOUPE_EXPORTS_DIR", DATA_DIR / "exports")
RUNS_DIR = env_path("LOUPE_RUNS_DIR", DATA_DIR / "runs")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names and gzip copies, written by `collectstatic` (demo.sh runs it; so must a deployment): WhiteNoise
    # serves them compressed and cached for a year. Served from the finders instead, plotly.min.js went out as
    # 4.8 MB uncompressed with a 60 s cache on every run page.
    "staticfiles": {"BACKEND": "loupe.staticfiles.HashedStaticFilesStorage"},
}

# Uploads: an import may carry images, so its limit is larger than Django's default form limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
LOUPE_MAX_UPLOAD_BYTES = env_int("LOUPE_MAX_UPLOAD_BYTES", 512 * 1024 * 1024)
# API imports of uploads larger than this run as import jobs (202) instead of in the web process (issue 16).
LOUPE_SYNC_IMPORT_MAX_BYTES = env_int("LOUPE_SYNC_IMPORT_MAX_BYTES", 2 * 1024 * 1024)
LOUPE_MAX_IMAGE_BYTES = env_int("LOUPE_MAX_IMAGE_BYTES", 20 * 1024 * 1024)
LOUPE_MAX_IMAGE_PIXELS = env_int("LOUPE_MAX_IMAGE_PIXELS", 40_000_000)
LOUPE_ALLOW_PRIVATE_URLS = env_bool("LOUPE_ALLOW_PRIVATE_URLS", False)
# A remote image's whole download (seconds), however slowly its server sends: an import is not held longer.
LOUPE_IMAGE_FETCH_SECONDS = env_float("LOUPE_IMAGE_FETCH_SECONDS", 30.0)
# The AI labeler's key for an OpenAI-compatible server: read by the worker, never stored on a job.
LOUPE_LABELER_API_KEY = env_str("LOUPE_LABELER_API_KEY", "")
LOUPE_LEASE_SECONDS = env_int("LOUPE_LEASE_SECONDS", 30 * 60)
# A running job whose heartbeat is older than this is taken as dead (its worker was killed).
LOUPE_HEARTBEAT_TIMEOUT_SECONDS = env_int("LOUPE_HEARTBEAT_TIMEOUT_SECONDS", 120)
# How a training worker launches a run: empty trains in the worker process; a launcher command runs it in
# child processes, e.g. "accelerate launch --multi_gpu --num_processes 4" or "torchrun --nproc_per_node 4".
LOUPE_TRAIN_LAUNCHER = env_str("LOUPE_TRAIN_LAUNCHER", "")
# Reward functions training configs may name in `reward_function` (name -> "package.module:function"). Only
# the admin sets them here: a run's config names one of them (by name or by its exact value), never any
# other importable path (a config naming "os:system" is refused, and the worker imports nothing else).
LOUPE_REWARD_FUNCTIONS = env_dict("LOUPE_REWARD_FUNCTIONS", {})

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON with a depth limit, finite numbers and storable strings: bad bodies are a 400, never a 500.
    "DEFAULT_PARSER_CLASSES": [
        "loupe.parsers.CheckedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "loupe.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loupe API",
    "DESCRIPTION": "Feedback on multimodal model outputs, preference datasets and training runs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs pages' JavaScript is served from the sidecar package, not a CDN: Loupe runs offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery. The embedded default is kombu's filesystem transport: a worker started beside the web server
# picks tasks up from a folder, so nothing else needs to run. Production sets CELERY_BROKER_URL=redis://…
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_DIR = env_path("LOUPE_BROKER_DIR", DATA_DIR / "broker")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
        # The default 1 s poll makes every job start a second late; 0.1 s costs little CPU.
        "polling_interval": env_float("LOUPE_BROKER_POLL_SECONDS", 0.1),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "training.*": {"queue": "training"},
    "labeler.*": {"queue": "labeler"},
    "benchmark.*": {"queue": "benchmark"},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("LOUPE_CELERY_EAGER", False)
# Submits ask for a background derivation of their project's stale preference pairs (annotation.services.
# pair_refresh) at most once per this many seconds per process, run that long after the first ask, so a
# snapshot finds little left to derive. 0, or LOUPE_PAIR_REFRESH_BACKGROUND=0, turns it off (snapshots still
# derive whatever is stale); it is off with eager Celery, which would run it inside the submit's request.
LOUPE_PAIR_REFRESH_DEBOUNCE_SECONDS = env_float("LOUPE_PAIR_REFRESH_DEBOUNCE_SECONDS", 30.0)
LOUPE_PAIR_REFRESH_BACKGROUND = env_bool("LOUPE_PAIR_REFRESH_BACKGROUND", not CELERY_TASK_ALWAYS_EAGER)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOUPE_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
