"""Parley settings: one module, every value from the environment (django-environ).

A wrong value stops start-up with an `ImproperlyConfigured` error naming the variable.
Secrets may also come from `<NAME>_FILE`. With nothing configured, the embedded services
of `chatbot.embedded` serve, and the secret key and encryption key are generated once
into `./var/` (0600) so that a local install needs no set-up at all.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from chatbot import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _read(name: str, default: str = "") -> str:
    """A string variable, or the content of the file named by `<name>_FILE`."""
    file_var = os.environ.get(f"{name}_FILE")
    if file_var:
        try:
            return Path(file_var).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_var!r}: {exc}") from exc
    return os.environ.get(name, default).strip()


def _bool(name: str, default: bool) -> bool:
    raw = _read(name)
    if not raw:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}: expected true or false, got {raw!r}")


def _int(name: str, default: int) -> int:
    raw = _read(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected an integer, got {raw!r}") from None


def _url(name: str, schemes: set[str]) -> str:
    raw = _read(name) or embedded.DEFAULT_URLS[name]
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not (parts.hostname or parts.path):
        allowed = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(f"{name}: expected a {allowed} URL, got {raw!r}")
    return raw


def _generated_secret(name: str, make: callable) -> str:  # type: ignore[valid-type]
    """A secret generated once for a local install, kept under ./var/ (mode 0600)."""
    path = embedded.VAR_DIR / "secrets" / name.lower()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(make())
    return path.read_text().strip()


DEBUG = _bool("DEBUG", False)
SECRET_KEY = _read("SECRET_KEY") or _generated_secret(
    "SECRET_KEY", lambda: secrets.token_urlsafe(50)
)
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY: must be at least 32 characters long")

# Comma-separated Fernet keys; the first encrypts, all decrypt (rotation).
PARLEY_ENCRYPTION_KEYS = [
    key.strip()
    for key in (
        _read("PARLEY_ENCRYPTION_KEY")
        or _generated_secret("PARLEY_ENCRYPTION_KEY", lambda: Fernet.generate_key().decode())
    ).split(",")
    if key.strip()
]
for _key in PARLEY_ENCRYPTION_KEYS:
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            "PARLEY_ENCRYPTION_KEY: expected url-safe base64 Fernet keys (32 bytes), "
            "comma-separated; make one with "
            '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key())"`'
        ) from None

PARLEY_BASE_DOMAIN = _read("PARLEY_BASE_DOMAIN", "localhost").lower().strip(".")
if not PARLEY_BASE_DOMAIN or "/" in PARLEY_BASE_DOMAIN or ":" in PARLEY_BASE_DOMAIN:
    raise ImproperlyConfigured(
        f"PARLEY_BASE_DOMAIN: expected a host name such as example.com, got {PARLEY_BASE_DOMAIN!r}"
    )
ALLOWED_HOSTS = [PARLEY_BASE_DOMAIN, f".{PARLEY_BASE_DOMAIN}", "127.0.0.1", "localhost"] + [
    host.strip() for host in _read("PARLEY_ALLOWED_HOSTS").split(",") if host.strip()
]
CSRF_TRUSTED_ORIGINS = [
    origin.strip() for origin in _read("PARLEY_CSRF_TRUSTED_ORIGINS").split(",") if origin.strip()
]

# --- Applications -----------------------------------------------------------------------
SHARED_APPS = [
    "django_tenants",
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "chatbot.apps.ConsoleAdminConfig",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "chatbot.apps.ConsoleAdminConfig",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.postgres",
    "chatbot",
    "knowledge",
    "conversations",
    "widget",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
# django-tenants paints tenant apps green in the admin index: Parley has its own branding.
TENANT_COLOR_ADMIN_APPS = False
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_URLCONF = "chatbot.urls_public"
ROOT_URLCONF = "chatbot.urls"

MIDDLEWARE = [
    "chatbot.health.HealthCheckMiddleware",  # answers /healthz on any host, tenant or not
    "django_tenants.middleware.main.TenantMainMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "chatbot.audit.AuditMiddleware",  # the console user as the actor of audited changes
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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

# Translations of Parley's own strings (the visitor chat page's, first): docs/widget.md.
LOCALE_PATHS = [BASE_DIR / "locale"]

WSGI_APPLICATION = None
ASGI_APPLICATION = "chatbot.asgi.application"

# --- Data stores ------------------------------------------------------------------------
DATABASE_URL = _url("DATABASE_URL", {"postgres", "postgresql", "pgsql"})
try:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
except (ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"DATABASE_URL: cannot parse {DATABASE_URL!r}: {exc}") from exc
DATABASES["default"]["ENGINE"] = "django_tenants.postgresql_backend"
DATABASES["default"]["CONN_MAX_AGE"] = _int("PARLEY_DB_CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = _url("REDIS_URL", {"redis", "rediss", "unix"})
CHROMA_URL = _url("CHROMA_URL", {"http", "https"})

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "parley",
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "parley:channels"},
    }
}

# --- Celery -----------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_DEFAULT_QUEUE = _read("PARLEY_CELERY_QUEUE", "parley")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Synced into django-celery-beat's tables at beat start (editable in the platform admin).
CELERY_BEAT_SCHEDULE = {
    "sync-due-web-sources": {"task": "knowledge.tasks.sync_due_sources", "schedule": 900.0},
}
CELERY_TIMEZONE = "UTC"

# --- Auth, i18n, static -----------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(_read("PARLEY_STATIC_ROOT") or BASE_DIR / "var" / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_ROOT = Path(_read("PARLEY_MEDIA_ROOT") or BASE_DIR / "var" / "media")
MEDIA_URL = "/media/"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = _bool("PARLEY_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SESSION_COOKIE_SECURE else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["chatbot.api_auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chatbot.api_errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["chatbot.api_auth.ApiKeyThrottle"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Parley API",
    "DESCRIPTION": "Per-tenant API of Parley. Authenticate with `Authorization: Bearer <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
}

PARLEY_HEALTH_TIMEOUT = float(_int("PARLEY_HEALTH_TIMEOUT_MS", 2000)) / 1000

# --- LLM providers ----------------------------------------------------------------------
# Seconds: one whole attempt; connecting; the longest silence of a stream (before the first
# token, or between two chunks). Attempts per answer, the first included (retries happen
# only before the first token), and the base of the exponential backoff between them.
PARLEY_LLM_TIMEOUT = float(_int("PARLEY_LLM_TIMEOUT", 60))
PARLEY_LLM_CONNECT_TIMEOUT = float(_int("PARLEY_LLM_CONNECT_TIMEOUT", 5))
PARLEY_LLM_READ_TIMEOUT = float(_int("PARLEY_LLM_READ_TIMEOUT", 30))
PARLEY_LLM_RETRIES = _int("PARLEY_LLM_RETRIES", 3)
PARLEY_LLM_RETRY_BASE_DELAY = _int("PARLEY_LLM_RETRY_BASE_DELAY_MS", 500) / 1000
for _name, _value in {
    "PARLEY_LLM_TIMEOUT": PARLEY_LLM_TIMEOUT,
    "PARLEY_LLM_CONNECT_TIMEOUT": PARLEY_LLM_CONNECT_TIMEOUT,
    "PARLEY_LLM_READ_TIMEOUT": PARLEY_LLM_READ_TIMEOUT,
    "PARLEY_LLM_RETRIES": PARLEY_LLM_RETRIES,
}.items():
    if _value < 1:
        raise ImproperlyConfigured(f"{_name}: must be at least 1, got {_value:g}")
if PARLEY_LLM_RETRY_BASE_DELAY < 0:
    raise ImproperlyConfigured("PARLEY_LLM_RETRY_BASE_DELAY_MS: must not be negative")

# --- Visitor socket (docs/visitor-socket.md) --------------------------------------------
# Questions per minute from one visitor id; requests per minute (questions, feedback,
# handoffs, resumes) from one IP address, per tenant. 0 turns a limit off.
PARLEY_VISITOR_MESSAGES_PER_MINUTE = _int("PARLEY_VISITOR_MESSAGES_PER_MINUTE", 20)
PARLEY_IP_REQUESTS_PER_MINUTE = _int("PARLEY_IP_REQUESTS_PER_MINUTE", 120)
# Proxies in front of daphne that append the client to X-Forwarded-For (0: none, the peer
# address is the client's). Only trust as many as there really are: the header is forgeable.
PARLEY_TRUSTED_PROXY_COUNT = _int("PARLEY_TRUSTED_PROXY_COUNT", 0)
# Threads (each with its own database connection) that run the sockets' database and
# retrieval work in parallel, per daphne process; 0: asgiref's one shared thread.
PARLEY_SOCKET_DB_THREADS = _int("PARLEY_SOCKET_DB_THREADS", min(8, 2 * (os.cpu_count() or 1)))
for _name in (
    "PARLEY_VISITOR_MESSAGES_PER_MINUTE",
    "PARLEY_IP_REQUESTS_PER_MINUTE",
    "PARLEY_TRUSTED_PROXY_COUNT",
    "PARLEY_SOCKET_DB_THREADS",
):
    if globals()[_name] < 0:
        raise ImproperlyConfigured(f"{_name}: must not be negative, got {globals()[_name]}")

# --- Web processes ----------------------------------------------------------------------
# `manage.py serve` runs this many daphne processes on one socket (0: one per CPU); each
# loads the local embedder in the background at start unless PARLEY_WARM_UP is false.
PARLEY_WEB_PROCESSES = _int("PARLEY_WEB_PROCESSES", 0)
PARLEY_WARM_UP = _bool("PARLEY_WARM_UP", True)

# --- API rate limit (per key, per minute; a tenant's own setting wins; 0: off) ---------
PARLEY_API_RATE_PER_MINUTE = _int("PARLEY_API_RATE_PER_MINUTE", 120)

# --- Webhooks ---------------------------------------------------------------------------
PARLEY_WEBHOOK_MAX_ATTEMPTS = _int("PARLEY_WEBHOOK_MAX_ATTEMPTS", 6)
PARLEY_WEBHOOK_RETRY_BASE_SECONDS = _int("PARLEY_WEBHOOK_RETRY_BASE_SECONDS", 60)

# --- Knowledge --------------------------------------------------------------------------
# Fetching user-supplied URLs: networks the SSRF guard lets through (intranets, tests).
PARLEY_FETCH_ALLOWED_NETWORKS = _read("PARLEY_FETCH_ALLOWED_NETWORKS")
PARLEY_FETCH_HOST_CONCURRENCY = _int("PARLEY_FETCH_HOST_CONCURRENCY", 2)
PARLEY_FETCH_HOST_DELAY = float(_read("PARLEY_FETCH_HOST_DELAY_MS") or 250) / 1000
PARLEY_FETCH_MAX_BYTES = _int("PARLEY_FETCH_MAX_MB", 20) * 1024 * 1024
# Chroma collections are named <prefix>_<schema>_kb<id>; the test suite uses its own prefix.
PARLEY_CHROMA_PREFIX = "parley"
PARLEY_MAX_UPLOAD_BYTES = _int("PARLEY_MAX_UPLOAD_MB", 50) * 1024 * 1024
# A batch upload may carry several files at the limit; Django checks non-file fields only.
DATA_UPLOAD_MAX_NUMBER_FILES = _int("PARLEY_MAX_UPLOAD_FILES", 100)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Offline: no telemetry, no model hub (unstructured, Chroma, Hugging Face).
for _var, _value in {
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
}.items():
    os.environ.setdefault(_var, _value)
# The local embedder's ONNX export is made once from the packaged weights and kept here.
os.environ.setdefault("PARLEY_MODEL_CACHE", str(embedded.VAR_DIR / "models"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": _read("PARLEY_LOG_LEVEL", "INFO").upper()},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}
