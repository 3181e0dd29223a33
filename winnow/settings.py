"""Winnow settings, read from the environment.

Every setting has a safe development default, so `make run` needs no configuration: the embedded
PostgreSQL server (winnow/embedded_db.py), a filesystem Celery broker and a local media folder
under `var/`. Production and the test suite set `DATABASE_URL` (a PostgreSQL server) and
`CELERY_BROKER_URL` (Redis or RabbitMQ). Bad values fail loudly
with ImproperlyConfigured instead of being silently ignored.
"""

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from winnow import embedded_db

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


def env_hosts(name: str) -> list[str]:
    """A comma-separated list of `host`, `host:port`, `[ipv6]` or `[ipv6]:port` entries."""
    entries = env_list(name)
    for entry in entries:
        if entry.startswith("["):
            port = entry.partition("]")[2].removeprefix(":")
        else:
            port = entry.partition(":")[2] if entry.count(":") == 1 else ""
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ImproperlyConfigured(f"{name}: {entry!r} must be host or host:port, with a port from 1 to 65535")
    return entries


def env_rate(name: str, default: str) -> str | None:
    """A rate as DRF writes it, `N/s`, `N/min`, `N/hour` or `N/day`; `off` (or 0) turns the limit off."""
    raw = os.environ.get(name, default).strip().lower()
    if raw in {"off", "0", "none"}:
        return None
    number, _, period = raw.partition("/")
    if not number.isdigit() or int(number) < 1 or period not in {"s", "sec", "m", "min", "h", "hour", "d", "day"}:
        raise ImproperlyConfigured(f"{name} must be a rate such as 10/min, 100/hour or 1000/day (or off), got {raw!r}")
    return raw


def cache_settings(url: str) -> dict[str, str]:
    """The default cache from CACHE_URL: redis://host:port/db (what production uses, shared by every web
    process), file:///path, or locmem:// (one process; `make run`'s default, as it needs no server)."""
    if url in {"", "locmem://"}:
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "winnow"}
    if url.startswith(("redis://", "rediss://", "unix://")):
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    if url.startswith("file://") and len(url) > len("file://"):
        return {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": url[len("file://"):]}
    raise ImproperlyConfigured(f"CACHE_URL must be redis://host:port/db, file:///path or locmem://, got {url!r}")


def s3_options() -> dict[str, Any]:
    """django-storages' S3Storage options from the AWS_* variables (docs/OPERATIONS.md, "Media storage").

    Objects are private (every file is served through the app, winnow/media.py) and a write replaces
    what is stored under its name (names are content-addressed or carry a random token). A storage that
    does not answer fails each call within AWS_S3_CONNECT_TIMEOUT × AWS_S3_MAX_ATTEMPTS or so.
    """
    from botocore.config import Config

    bucket = env_str("AWS_STORAGE_BUCKET_NAME", "")
    if not bucket:
        raise ImproperlyConfigured("WINNOW_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME: the bucket that holds the media")
    endpoint = env_str("AWS_S3_ENDPOINT_URL", "")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"AWS_S3_ENDPOINT_URL must be an http:// or https:// URL, got {endpoint!r}")
    # MinIO, Ceph and most servers other than AWS want path-style addresses (endpoint/bucket/key).
    addressing = env_str("AWS_S3_ADDRESSING_STYLE", "path" if endpoint else "auto")
    if addressing not in {"auto", "path", "virtual"}:
        raise ImproperlyConfigured(f"AWS_S3_ADDRESSING_STYLE must be auto, path or virtual, got {addressing!r}")
    options: dict[str, Any] = {
        "bucket_name": bucket,
        "location": env_str("AWS_LOCATION", "").strip("/"),
        "file_overwrite": True,
        "default_acl": None,
        # Reads that go through a spool (zip members, downloads) move from memory to a temporary file past this.
        "max_memory_size": 8 * 1024 * 1024,
        "client_config": Config(
            s3={"addressing_style": addressing},
            signature_version="s3v4",
            connect_timeout=env_float("AWS_S3_CONNECT_TIMEOUT", 5, minimum=0.1),
            read_timeout=env_float("AWS_S3_READ_TIMEOUT", 60, minimum=0.1),
            retries={"max_attempts": env_int("AWS_S3_MAX_ATTEMPTS", 3, minimum=1), "mode": "standard"},
        ),
    }
    # Unset: AWS's endpoint, and boto3's own credential chain (an instance role, ~/.aws, the variables).
    for option, variable in (("endpoint_url", "AWS_S3_ENDPOINT_URL"), ("region_name", "AWS_S3_REGION_NAME"),
                             ("access_key", "AWS_ACCESS_KEY_ID"), ("secret_key", "AWS_SECRET_ACCESS_KEY"),
                             ("security_token", "AWS_SESSION_TOKEN")):
        if env_str(variable, ""):
            options[option] = env_str(variable, "")
    return options


def media_storage(kind: str) -> dict[str, Any]:
    """STORAGES["default"] for WINNOW_STORAGE: `filesystem` (MEDIA_ROOT) or `s3` (S3-compatible object storage)."""
    if kind == "filesystem":
        return {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    if kind == "s3":
        return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": s3_options()}
    raise ImproperlyConfigured(f"WINNOW_STORAGE must be filesystem or s3, got {kind!r}")


def env_proxy_header(name: str) -> tuple[str, str] | None:
    """`Header-Name: value` as Django's SECURE_PROXY_SSL_HEADER pair (HTTP_HEADER_NAME, value); empty is None."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    header, sep, value = raw.partition(":")
    if not sep or not header.strip() or not value.strip() or " " in header.strip():
        raise ImproperlyConfigured(f"{name} must look like 'X-Forwarded-Proto: https', got {raw!r}")
    return "HTTP_" + header.strip().upper().replace("-", "_"), value.strip()


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
    # Probes first: /healthz, /readyz, /metrics answer whatever Host the prober sends (winnow/health.py).
    "winnow.health.ProbeMiddleware",
    "winnow.logs.RequestIdMiddleware",
    "winnow.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "winnow.security.ContentSecurityPolicyMiddleware",
    "winnow.exceptions.ApiErrorPagesMiddleware",
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

# PostgreSQL is the one database. Without DATABASE_URL, the embedded server of `make run`
# (winnow/embedded_db.py, data under var/postgres) when it is running.
_database_url = env_str("DATABASE_URL", "") or embedded_db.running_url(VAR_DIR / "postgres")
if not _database_url:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set and the embedded PostgreSQL is not running: set DATABASE_URL to a PostgreSQL "
        "server (postgres://user:password@host:5432/winnow) or start the embedded one with "
        "`python winnow/embedded_db.py start` (make run does this)"
    )
DATABASES = {
    "default": dj_database_url.parse(_database_url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0))
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(f"DATABASE_URL must name a PostgreSQL database (postgres://…), not {DATABASES['default']['ENGINE']}")
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
# Media (images, thumbnails, exports, split manifests, run files; winnow/storage.py): the MEDIA_ROOT folder,
# or S3-compatible object storage (AWS S3, MinIO, Ceph…) with WINNOW_STORAGE=s3 or a bucket name set, so
# web, worker and GPU worker can run on different machines.
WINNOW_STORAGE = env_str("WINNOW_STORAGE", "") or ("s3" if env_str("AWS_STORAGE_BUCKET_NAME", "") else "filesystem")
# Where workers (and web servers, to translate) keep local copies of stored files when the storage is a bucket.
WINNOW_MEDIA_CACHE = Path(env_str("WINNOW_MEDIA_CACHE", str(VAR_DIR / "media-cache")))
STORAGES = {
    "default": media_storage(WINNOW_STORAGE),
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
# JSON bodies of the API (which DATA_UPLOAD_MAX_MEMORY_SIZE does not cover): larger ones are a 413.
# URL uploads (POST /api/v1/batches/{id}/tasks/ with {"tasks": [...]}) may send up to INGEST_MAX_URL_TASKS.
API_MAX_JSON_BYTES = env_int("API_MAX_JSON_BYTES", 5 * 1024 * 1024, minimum=1024)
INGEST_MAX_JSON_BYTES = env_int("INGEST_MAX_JSON_BYTES", 64 * 1024 * 1024, minimum=1024)

CACHES = {"default": cache_settings(env_str("CACHE_URL", ""))}

# Password guessing: failed sign-ins (API token, /login/, admin) and sign-ups allowed per client address
# and per username before the door answers 429 (winnow/throttling.py, docs/SECURITY.md).
LOGIN_RATE_PER_IP = env_rate("LOGIN_RATE_PER_IP", "10/min")
LOGIN_RATE_PER_USERNAME = env_rate("LOGIN_RATE_PER_USERNAME", "20/hour")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "labeling.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Winnow's JSON parser limits a body's size and nesting (winnow/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "winnow.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "winnow.exceptions.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    # `?format=` belongs to the export endpoint (json, ndjson, csv…), not to renderer negotiation.
    "URL_FORMAT_OVERRIDE": None,
    # How many proxies in front of the server append to X-Forwarded-For; 0 trusts only REMOTE_ADDR, so a
    # client cannot pick its own address for the sign-in throttle by sending the header itself.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0, minimum=0),
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

# Webhooks and callbacks: a failed delivery is retried after BASE, 2×BASE, 4×BASE… seconds (at most
# MAX_DELAY apart) until WINDOW seconds after the event, then marked failed. Receivers are checked
# against the same address rules as URL ingestion (INGEST_ALLOWED_HOSTS lets internal hosts through).
WEBHOOK_RETRY_BASE_SECONDS = env_float("WEBHOOK_RETRY_BASE_SECONDS", 30, minimum=0.01)
WEBHOOK_RETRY_MAX_DELAY_SECONDS = env_float("WEBHOOK_RETRY_MAX_DELAY_SECONDS", 3600, minimum=0.01)
WEBHOOK_RETRY_WINDOW_SECONDS = env_float("WEBHOOK_RETRY_WINDOW_SECONDS", 24 * 3600, minimum=1)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=0.1)
WEBHOOK_QUEUE = env_str("WEBHOOK_QUEUE", "default")
# After a secret rotation, deliveries are signed with the new and the previous secret for this long.
WEBHOOK_SECRET_GRACE_HOURS = env_float("WEBHOOK_SECRET_GRACE_HOURS", 24, minimum=0)
# Room between the longest countdown and the broker's visibility timeout: a busy worker picks a due
# message up late.
VISIBILITY_MARGIN_SECONDS = 600

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
# Redis (and SQS) hand a message that is not acknowledged within the visibility timeout to another worker.
# A message with a countdown counts from when it was sent, so the timeout must outlast the longest countdown
# the code uses (a webhook retry waits up to WEBHOOK_RETRY_MAX_DELAY_SECONDS) or every retry would run twice;
# long jobs (training runs) are safe either way: a redelivered job finds its row claimed and beating.
BROKER_VISIBILITY_TIMEOUT_SECONDS = env_int(
    "BROKER_VISIBILITY_TIMEOUT_SECONDS", max(12 * 3600, int(WEBHOOK_RETRY_MAX_DELAY_SECONDS) * 2), minimum=1
)
if BROKER_VISIBILITY_TIMEOUT_SECONDS <= WEBHOOK_RETRY_MAX_DELAY_SECONDS + VISIBILITY_MARGIN_SECONDS:
    raise ImproperlyConfigured(
        f"BROKER_VISIBILITY_TIMEOUT_SECONDS ({BROKER_VISIBILITY_TIMEOUT_SECONDS}) must be more than "
        f"WEBHOOK_RETRY_MAX_DELAY_SECONDS + {VISIBILITY_MARGIN_SECONDS} ({WEBHOOK_RETRY_MAX_DELAY_SECONDS:g} + "
        f"{VISIBILITY_MARGIN_SECONDS}): raise it or lower the retry delay"
    )
if not CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT_SECONDS}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Training goes to the `gpu` queue when a GPU worker exists; a CPU-only install routes it to `default`.
WINNOW_TRAINING_QUEUE = env_str("WINNOW_TRAINING_QUEUE", "gpu")
# Background jobs (exports, webhook deliveries, runs, evaluations, augmentations, winnow/jobs.py):
# the worker of a running job beats this often (WINNOW_RUN_HEARTBEAT_SECONDS is the older name),
# and every worker sweeps this often for jobs whose worker stopped beating, to queue them again.
WINNOW_JOB_HEARTBEAT_SECONDS = env_float(
    "WINNOW_JOB_HEARTBEAT_SECONDS", env_float("WINNOW_RUN_HEARTBEAT_SECONDS", 5, minimum=0.1), minimum=0.1
)
WINNOW_JOB_SWEEP_SECONDS = env_float("WINNOW_JOB_SWEEP_SECONDS", 10, minimum=0.1)
# A running run, evaluation or augmentation whose beat is older than this lost its worker and is
# queued again; a run resumes from its last checkpoint.
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
# A zip member over 1 MB expanded that expands more than this many times its compressed size is refused.
INGEST_MAX_ZIP_RATIO = env_int("INGEST_MAX_ZIP_RATIO", 200, minimum=1)
INGEST_MAX_URL_TASKS = env_int("INGEST_MAX_URL_TASKS", 100_000, minimum=1)
# Plan the per-image statements once per connection (PREPARE); off behind a transaction-mode pooler.
WINNOW_PREPARED_STATEMENTS = env_bool("WINNOW_PREPARED_STATEMENTS", True)
# Export files are deleted this long after they were written (0: kept until deleted by hand).
EXPORT_RETENTION_HOURS = env_int("EXPORT_RETENTION_HOURS", 168, minimum=0)
# A running export whose worker has not beaten for this long is taken over (by the sweep or a redelivered job).
EXPORT_STALE_SECONDS = env_int("EXPORT_STALE_SECONDS", 120, minimum=1)
# One download attempt (connection, redirects, headers and body) takes at most this long in all.
INGEST_URL_TIMEOUT = env_int("INGEST_URL_TIMEOUT", 15, minimum=1)
INGEST_URL_MAX_REDIRECTS = env_int("INGEST_URL_MAX_REDIRECTS", 5, minimum=0)
# A 429 or 5xx answer is tried again this many times, after BACKOFF × 2^n seconds or the server's
# Retry-After, never waiting more than MAX_WAIT seconds.
INGEST_URL_RETRIES = env_int("INGEST_URL_RETRIES", 2, minimum=0)
INGEST_URL_RETRY_BACKOFF = env_float("INGEST_URL_RETRY_BACKOFF", 1, minimum=0)
INGEST_URL_RETRY_MAX_WAIT = env_float("INGEST_URL_RETRY_MAX_WAIT", 30, minimum=0)
# Hosts (names or IP addresses) allowed even though they resolve to internal addresses: `host` on any
# port, `host:port` (`[v6]:port`) on that port only.
INGEST_ALLOWED_HOSTS = env_hosts("INGEST_ALLOWED_HOSTS")
THUMBNAIL_SIZE = env_int("THUMBNAIL_SIZE", 256, minimum=16)

# Model assistance (docs/ASSIST.md). Embeddings come from a small CNN trained on the project's own images
# (rotation prediction) unless WINNOW_FEATURE_WEIGHTS names a local torchvision ResNet weights file, which
# is never downloaded. Training steps and input size bound the job's time; torch threads its CPU use.
WINNOW_ASSIST = env_bool("WINNOW_ASSIST", True)
WINNOW_FEATURE_WEIGHTS = env_str("WINNOW_FEATURE_WEIGHTS", "")
WINNOW_FEATURE_STEPS = env_int("WINNOW_FEATURE_STEPS", 200, minimum=1)
WINNOW_FEATURE_SIZE = env_int("WINNOW_FEATURE_SIZE", 64, minimum=16)
WINNOW_FEATURE_THREADS = env_int("WINNOW_FEATURE_THREADS", 2, minimum=1)
# Jobs wait this long after the first upload or answer that asks for them, so a burst costs one run.
WINNOW_ASSIST_DEBOUNCE_SECONDS = env_float("WINNOW_ASSIST_DEBOUNCE_SECONDS", 10, minimum=0)
WINNOW_ASSIST_STALE_SECONDS = env_int("WINNOW_ASSIST_STALE_SECONDS", 300, minimum=1)

# Likely label errors (docs/LABEL_ERRORS.md): a batch becoming labeled, or a correction from the likely-errors
# queue, queues a check of the project's labels (when it has embeddings), after the debounce.
WINNOW_LABEL_ERRORS = env_bool("WINNOW_LABEL_ERRORS", True)
WINNOW_LABEL_ERRORS_DEBOUNCE_SECONDS = env_float("WINNOW_LABEL_ERRORS_DEBOUNCE_SECONDS", 30, minimum=0)
WINNOW_LABEL_ERRORS_STALE_SECONDS = env_int("WINNOW_LABEL_ERRORS_STALE_SECONDS", 300, minimum=1)

# The address clients reach this server at; callbacks sent by workers use it for image URLs.
WINNOW_PUBLIC_URL = env_str("WINNOW_PUBLIC_URL", "http://localhost:8000")

# Signed media URLs (Label Studio exports' image links) serve their file to anyone for this long.
SIGNED_MEDIA_URL_SECONDS = env_int("SIGNED_MEDIA_URL_SECONDS", 7 * 24 * 3600, minimum=60)

# Labeling defaults.
LEASE_SECONDS = env_int("LEASE_SECONDS", 600, minimum=5)
WINNOW_SIGNUP_ENABLED = env_bool("WINNOW_SIGNUP_ENABLED", False)

# LOG_FORMAT=json writes one JSON object per line (time, level, logger, message, request_id; winnow/logs.py).
LOG_FORMAT = env_str("LOG_FORMAT", "text")
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "winnow.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", **({"formatter": "json"} if LOG_FORMAT == "json" else {})}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
# Celery replaces the root logger's handlers with its own unless told not to: JSON logs need ours.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"
# /metrics: with a token, `Authorization: Bearer <token>`; without, loopback clients only (winnow/metrics.py).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# Cookies: sent over HTTPS only unless DEBUG (or told otherwise), out of reach of page scripts (pages read
# the CSRF token from their <meta>), and not sent with cross-site requests other than top-level navigation.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Behind a TLS proxy, the header it sets to say the client used HTTPS, e.g. "X-Forwarded-Proto: https".
# Off by default: trusted without a proxy that overwrites it, a client could claim HTTPS itself.
SECURE_PROXY_SSL_HEADER = env_proxy_header("SECURE_PROXY_SSL_HEADER")
