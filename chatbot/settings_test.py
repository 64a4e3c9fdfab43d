"""Test settings: the real services (PostgreSQL, Redis, Chroma), kept apart from a
developer's data: a `test_` database, another Redis database number and another queue."""

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from chatbot.settings import *  # noqa: F403
from chatbot.settings import DATABASES, REDIS_URL, _int

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_redis = urlsplit(REDIS_URL)
REDIS_URL = urlunsplit(_redis._replace(path=f"/{_int('PARLEY_TEST_REDIS_DB', 9)}"))
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "parley-test",
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "parley-test:channels"},
    }
}
CELERY_BROKER_URL = CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("PARLEY_TEST_CELERY_QUEUE", "parley-test")

DATABASES["default"]["CONN_MAX_AGE"] = 0
# Two suites may run side by side (a fresh clone's CI, a developer) with their own names.
DATABASES["default"]["TEST"] = {
    "NAME": os.environ.get("PARLEY_TEST_DB_NAME", f"test_{DATABASES['default']['NAME']}")
}
if os.environ.get("PARLEY_TEST_WORKER"):
    # A worker process started by the test suite works on the test database.
    DATABASES["default"]["NAME"] = DATABASES["default"]["TEST"]["NAME"]

# No collectstatic before tests: plain static URLs instead of the manifest's hashed names.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

PARLEY_CHROMA_PREFIX = os.environ.get("PARLEY_TEST_CHROMA_PREFIX", "parleytest")
# whitenoise warns on every request when STATIC_ROOT is missing (nothing is collected here).
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
