"""Flask + Bananas example: a report request is computed by a worker.

`flask --app reports run` in development, `gunicorn 'reports:create_app()'`
in production; the worker: `bananas worker --app reports.jobs:app`.
"""

from __future__ import annotations

from flask import Flask


def create_app() -> Flask:
    web = Flask(__name__)
    web.config.from_prefixed_env()  # FLASK_* variables; Bananas reads its own

    from .views import bp

    web.register_blueprint(bp)
    return web
