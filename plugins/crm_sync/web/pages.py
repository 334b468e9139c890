"""Server-rendered pages: the report's own Jinja environment, plus the console's templates."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

TEMPLATES = Path(__file__).parent / "templates"
# The Airflow UI frames the console from its own origin; no other site may, or it could trick a
# logged-in operator's click on "link these two" (clickjacking) past the Origin check and CSRF token.
ONLY_FRAMED_BY_AIRFLOW = {"Content-Security-Policy": "frame-ancestors 'self'", "X-Frame-Options": "SAMEORIGIN"}


@functools.cache
def _env():
    from crm_sync.pipeline.report import environment

    return environment(TEMPLATES)


def page(request: Request, template: str, **context: Any) -> HTMLResponse:
    """Render a console page; links are made relative to where the app is mounted (/crm-sync), and
    times are shown in the zone of the page's profile (a run report names its own)."""
    from crm_sync.timezones import zone

    base = request.scope.get("root_path", "").rstrip("/")
    if "profile" in context:
        context.setdefault("zone", context["profile"].zone)
    elif "r" in context:
        context.setdefault("zone", zone(context["r"]["timezone"]))
    return HTMLResponse(_env().get_template(template).render(base=base, **context), headers=ONLY_FRAMED_BY_AIRFLOW)
