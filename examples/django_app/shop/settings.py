"""Settings of the example shop, every deployment-specific value from the
environment (the Compose file sets them; the defaults suit development)."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = ["orders"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH", str(BASE_DIR / "db.sqlite3")),
        # The web server and the worker write this file at once: take the write
        # lock when a transaction begins, wait for it rather than fail.
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = "shop@example.com"

# Bananas: Redis in production (REDIS_URL), else the embedded SQLite broker in
# a file named by an ABSOLUTE path, so that runserver, gunicorn and the worker
# find the same queue whatever directory each was started in.
BANANAS_BROKER_URL = (
    os.environ.get("BANANAS_BROKER_URL")
    or os.environ.get("REDIS_URL")
    or f"sqlite:///{BASE_DIR / '.bananas' / 'queue.db'}"
)
