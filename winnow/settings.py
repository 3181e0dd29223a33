"""Winnow settings, read from the environment.

Every setting has a safe development default, so `make run` needs no configuration: SQLite, a
filesystem Celery broker and a local media folder under `var/`. Production and the test suite
set `DATABASE_URL` and `CELERY_BROKER_URL` (PostgreSQL, Redis or RabbitMQ). Bad values fail loudly
with ImproperlyConfigured instead of being silently ignored.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("WINNOW_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(name: str, default: float, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "winnow-development-key-not-for-production"  # noqa: S105
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here: /api/docs/ works offline
    "labeling",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "winnow.security.ContentSecurityPolicyMiddleware",
]
# Pages run only the scripts and styles served as files from here (winnow/security.py); never framed.
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True

ROOT_URLCONF = "winnow.urls"
WSGI_APPLICATION = "winnow.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'winnow.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite serialises writers; a generous timeout lets the web app and the worker share the file.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "frontend"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Uploads larger than this go to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 64 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DATA_UPLOAD_MAX_NUMBER_FILES", 1000, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "labeling.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "labeling.exceptions.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    # `?format=` belongs to the export endpoint (json, ndjson, csv…), not to renderer negotiation.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Winnow API",
    "DESCRIPTION": "Human-in-the-loop image cleaning whose audited output feeds CycleGAN training.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Many models have a `status`: name each enum after its choices, so generated clients read well.
    # Evaluations and augmentations share one set of states (queued, running, succeeded, failed).
    "ENUM_NAME_OVERRIDES": {
        "BatchStatusEnum": "labeling.models.BatchStatus",
        "TaskStatusEnum": "labeling.models.TaskStatus",
        "SplitStatusEnum": "labeling.models.SplitStatus",
        "DeliveryStatusEnum": "labeling.models.DeliveryStatus",
        "ExportStatusEnum": "labeling.models.ExportStatus",
        "RunStatusEnum": "training.models.RunStatus",
        "JobStatusEnum": "training.models.EvaluationStatus",
    },
}

# Celery. The default broker is a folder on disk so `make run` needs no server.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Training goes to the `gpu` queue when a GPU worker exists; a CPU-only install routes it to `default`.
WINNOW_TRAINING_QUEUE = env_str("WINNOW_TRAINING_QUEUE", "gpu")
# A running run's worker beats this often; a run whose beat is older than the stale limit lost its
# worker and is queued again, resuming from its last checkpoint.
WINNOW_RUN_HEARTBEAT_SECONDS = env_float("WINNOW_RUN_HEARTBEAT_SECONDS", 5, minimum=0.1)
WINNOW_RUN_STALE_SECONDS = env_float("WINNOW_RUN_STALE_SECONDS", 60, minimum=1)
WINNOW_MIN_DOMAIN_IMAGES = env_int("WINNOW_MIN_DOMAIN_IMAGES", 4, minimum=1)
WINNOW_TRAINING_DATA_WORKERS = env_int("WINNOW_TRAINING_DATA_WORKERS", 4, minimum=0)
WINNOW_TRAINING_DEVICE = env_str("WINNOW_TRAINING_DEVICE", "")  # "" picks CUDA when present
WINNOW_TRANSLATE_MAX_SIDE = env_int("WINNOW_TRANSLATE_MAX_SIDE", 1024, minimum=16)
# Local path of the FID Inception weights (never downloaded at run time; see docs/EVALUATION.md).
WINNOW_INCEPTION_WEIGHTS = env_str("WINNOW_INCEPTION_WEIGHTS", "")

# Ingestion limits: every bad input gets a clear per-item error and never stops the rest.
INGEST_MAX_FILE_BYTES = env_int("INGEST_MAX_FILE_BYTES", 50 * 1024 * 1024, minimum=1)
INGEST_MAX_PIXELS = env_int("INGEST_MAX_PIXELS", 50_000_000, minimum=1)
INGEST_MAX_ZIP_BYTES = env_int("INGEST_MAX_ZIP_BYTES", 4 * 1024 * 1024 * 1024, minimum=1)
INGEST_MAX_ZIP_MEMBERS = env_int("INGEST_MAX_ZIP_MEMBERS", 100_000, minimum=1)
INGEST_MAX_URL_TASKS = env_int("INGEST_MAX_URL_TASKS", 100_000, minimum=1)
# On PostgreSQL, lease tasks with one call of the database function winnow_lease_tasks (migration
# labeling 0009) rather than eleven ORM statements; off runs the ORM version, which other databases use.
WINNOW_LEASE_IN_DATABASE = env_bool("WINNOW_LEASE_IN_DATABASE", True)
# Plan the per-image statements once per connection (PREPARE); off behind a transaction-mode pooler.
WINNOW_PREPARED_STATEMENTS = env_bool("WINNOW_PREPARED_STATEMENTS", True)
# Export files are deleted this long after they were written (0: kept until deleted by hand).
EXPORT_RETENTION_HOURS = env_int("EXPORT_RETENTION_HOURS", 168, minimum=0)
# A running export whose worker has not beaten for this long is taken over by a redelivered job.
EXPORT_STALE_SECONDS = env_int("EXPORT_STALE_SECONDS", 120, minimum=1)
INGEST_URL_TIMEOUT = env_int("INGEST_URL_TIMEOUT", 15, minimum=1)
INGEST_URL_MAX_REDIRECTS = env_int("INGEST_URL_MAX_REDIRECTS", 5, minimum=0)
# Hosts (names or IP addresses) allowed even though they resolve to private or loopback addresses.
INGEST_ALLOWED_HOSTS = env_list("INGEST_ALLOWED_HOSTS")
THUMBNAIL_SIZE = env_int("THUMBNAIL_SIZE", 256, minimum=16)

# Webhooks and callbacks: a failed delivery is retried after BASE, 2×BASE, 4×BASE… seconds (at most
# MAX_DELAY apart) until WINDOW seconds after the event, then marked failed. Receivers are checked
# against the same address rules as URL ingestion (INGEST_ALLOWED_HOSTS lets internal hosts through).
WEBHOOK_RETRY_BASE_SECONDS = env_float("WEBHOOK_RETRY_BASE_SECONDS", 30, minimum=0.01)
WEBHOOK_RETRY_MAX_DELAY_SECONDS = env_float("WEBHOOK_RETRY_MAX_DELAY_SECONDS", 3600, minimum=0.01)
WEBHOOK_RETRY_WINDOW_SECONDS = env_float("WEBHOOK_RETRY_WINDOW_SECONDS", 24 * 3600, minimum=1)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=0.1)
WEBHOOK_QUEUE = env_str("WEBHOOK_QUEUE", "default")
# The address clients reach this server at; callbacks sent by workers use it for image URLs.
WINNOW_PUBLIC_URL = env_str("WINNOW_PUBLIC_URL", "http://localhost:8000")

# Labeling defaults.
LEASE_SECONDS = env_int("LEASE_SECONDS", 600, minimum=5)
WINNOW_SIGNUP_ENABLED = env_bool("WINNOW_SIGNUP_ENABLED", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
