"""Server-rendered pages: the report's own Jinja environment, plus the console's templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from crm_sync.pipeline.report import environment

TEMPLATES = Path(__file__).parent / "templates"
_env = environment(TEMPLATES)


def page(request: Request, template: str, **context: Any) -> HTMLResponse:
    """Render a console page; links are made relative to where the app is mounted (/crm-sync)."""
    base = request.scope.get("root_path", "").rstrip("/")
    return HTMLResponse(_env.get_template(template).render(base=base, **context))
