"""The worker's entry point: `bananas worker --app shop.worker:app`.

Django is set up before any handler module is imported (the handlers use the
ORM), then every installed app's `jobs.py` is imported, so a new Django app's
jobs are found with no change here.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
django.setup()

from django.utils.module_loading import autodiscover_modules  # noqa: E402

from shop.jobs import app  # noqa: E402

autodiscover_modules("jobs")

__all__ = ["app"]
