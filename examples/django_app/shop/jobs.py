"""The project's one Bananas app (like a Celery project's `proj/celery.py`).

Each Django app puts its handlers in its own `jobs.py`, registered on this
app; views import those modules to enqueue. The worker does not start here
but in shop/worker.py, which sets Django up first.
"""

from __future__ import annotations

from django.conf import settings

from bananas import Bananas

app = Bananas(broker_url=settings.BANANAS_BROKER_URL)
