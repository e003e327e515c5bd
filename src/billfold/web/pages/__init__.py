"""Server-rendered pages (Jinja2): the hosted payment page under ``/pay/``. They work
without JavaScript and carry a strict CSP with no script source at all."""

from __future__ import annotations

from pathlib import Path

from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def static_app() -> StaticFiles:
    """The stylesheets the pages link, served from the package so an installed wheel has them."""
    return StaticFiles(directory=STATIC_DIR)
