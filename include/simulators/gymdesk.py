"""Gymdesk simulator.

Gymdesk publishes no API documentation (see shared/ref/apps/NOTES.md), so this serves the
conventional REST API that include/profiles/gymdesk.yaml assumes, and nothing more:

- auth: header ``X-API-Key``;
- ``GET /v1/members?updated_since&updated_before&page&per_page`` (or ``?email=`` lookup),
  answering ``{"data": [...], "meta": {"page", "per_page", "total", "has_more"}}``
  ordered by ``updated_at`` then ``id``;
- ``GET|PATCH|DELETE /v1/members/{id}`` and ``POST /v1/members`` (201), bodies ``{"data": member}``;
- errors ``{"error": {"code", "message"}}``; 422 for an invalid email or a company name over 100
  characters; DELETE archives (``status: archived``).
"""

from __future__ import annotations

import itertools
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from include.simulators.base import SimState, error, install_common, iso_z, parse_iso, utcnow

MEMBER_FIELDS = ("first_name", "last_name", "email", "phone", "company", "lead_source", "status")
MAX_PER_PAGE = 100
MAX_COMPANY_LENGTH = 100  # an assumed field limit, so a write can be refused with a 422


def create_app(api_key: str, state: SimState | None = None) -> FastAPI:
    state = state or SimState()
    app = FastAPI(title="Gymdesk simulator")
    app.state.sim = state
    install_common(app, state)
    members = state.table("members")
    new_ids = itertools.count(50_000)

    def unauthorized(request: Request):
        if request.headers.get("x-api-key") != api_key:
            return error(401, {"error": {"code": "unauthorized", "message": "missing or invalid X-API-Key"}})
        return None

    def not_found(member_id: str):
        return error(404, {"error": {"code": "not_found", "message": f"member {member_id} not found"}})

    def invalid(body: dict[str, Any]) -> str | None:
        email = body.get("email")
        if email and "@" not in str(email):
            return f"email '{email}' is not a valid address"
        if len(str(body.get("company") or "")) > MAX_COMPANY_LENGTH:
            return f"company must be at most {MAX_COMPANY_LENGTH} characters"
        return None

    @app.get("/v1/members")
    def list_members(request: Request, page: int = 1, per_page: int = 50, updated_since: str | None = None,
                     updated_before: str | None = None, email: str | None = None):
        if (denied := unauthorized(request)) is not None:
            return denied
        if per_page < 1 or per_page > MAX_PER_PAGE or page < 1:
            return error(400, {"error": {"code": "bad_request", "message": f"page >= 1 and 1 <= per_page <= {MAX_PER_PAGE}"}})
        with state.lock:
            rows = list(members.values())
        if email is not None:
            rows = [m for m in rows if str(m.get("email") or "").lower() == email.lower()]
        if updated_since:
            since = parse_iso(updated_since)
            rows = [m for m in rows if parse_iso(m["updated_at"]) >= since]
        if updated_before:
            before = parse_iso(updated_before)
            rows = [m for m in rows if parse_iso(m["updated_at"]) < before]
        rows.sort(key=lambda m: (parse_iso(m["updated_at"]), str(m["id"])))
        start = (page - 1) * per_page
        chunk = rows[start:start + per_page]
        meta = {"page": page, "per_page": per_page, "total": len(rows), "has_more": start + per_page < len(rows)}
        return {"data": chunk, "meta": meta}

    @app.get("/v1/members/{member_id}")
    def get_member(request: Request, member_id: str):
        if (denied := unauthorized(request)) is not None:
            return denied
        with state.lock:
            member = members.get(member_id)
        if member is None:
            return not_found(member_id)
        return {"data": member}

    async def member_body(request: Request) -> tuple[dict[str, Any], JSONResponse | None]:
        """The member in a write's body, or the answer refusing the write."""
        if (denied := unauthorized(request)) is not None:
            return {}, denied
        body = (await request.json()).get("data", {})
        if (problem := invalid(body)) is not None:
            return body, error(422, {"error": {"code": "validation_error", "message": problem}})
        return body, None

    @app.post("/v1/members", status_code=201)
    async def create_member(request: Request):
        body, refused = await member_body(request)
        if refused is not None:
            return refused
        now = iso_z(utcnow())
        with state.lock:
            member_id = f"mem_{next(new_ids)}"
            while member_id in members:
                member_id = f"mem_{next(new_ids)}"
            member = {"id": member_id, "status": "active", "created_at": now, "updated_at": now}
            member.update({k: body.get(k) for k in MEMBER_FIELDS if k in body})
            members[member_id] = member
        return {"data": member}

    @app.patch("/v1/members/{member_id}")
    async def update_member(request: Request, member_id: str):
        body, refused = await member_body(request)
        if refused is not None:
            return refused
        with state.lock:
            member = members.get(member_id)
            if member is None:
                return not_found(member_id)
            member.update({k: body[k] for k in MEMBER_FIELDS if k in body})
            member["updated_at"] = iso_z(utcnow())
        return {"data": member}

    @app.delete("/v1/members/{member_id}")
    def archive_member(request: Request, member_id: str):
        if (denied := unauthorized(request)) is not None:
            return denied
        with state.lock:
            member = members.get(member_id)
            if member is None:
                return not_found(member_id)
            member["status"] = "archived"
            member["updated_at"] = iso_z(utcnow())
        return {"data": member}

    return app
