"""A newer deployment: the core handlers plus a job type older workers lack."""

from __future__ import annotations

from bananas import Bananas

from .core import _ran_in_pool
from .core import app as core_app

app = Bananas()
app.include(core_app)


@app.job()
def rare_task(k: str) -> str:
    return _ran_in_pool(k)
