"""What every webhook route does alike (GHL's and each app's): read the raw body no further than the
limit, refuse with a reason that never holds the body, keep a verified event once within its
sender's caps (off the event loop, in its own transaction), and answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from crm_sync.web.datamodels import Refusal, WebhookAnswer
from crm_sync.webhooks.inbox import Caps, Event, OverCap, keep

log = logging.getLogger(__name__)

def refusals(*codes: int) -> dict[int | str, dict]:
    """The refusals a route documents in the OpenAPI schema."""
    return {code: {"model": Refusal} for code in codes}


class TooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, read no further than ``limit`` bytes; TooLarge past it."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def body_or_refusal(request: Request, limit: int, sender: str) -> bytes | JSONResponse:
    try:
        return await read_body(request, limit)
    except TooLarge:
        return refuse(413, f"body over {limit} bytes", sender=sender)
    except ClientDisconnect:  # nothing stored: the sender gets no answer and delivers it again
        return refuse(400, "the client went away before its body arrived", sender=sender)


def refuse(status: int, reason: str, headers: dict[str, str] | None = None, sender: str = "GHL") -> JSONResponse:
    log.info("%s webhook refused with %s: %s", sender, status, reason)
    return JSONResponse(Refusal(detail=reason).model_dump(), status_code=status, headers=headers)


def answer(status: int, said: WebhookAnswer) -> JSONResponse:
    return JSONResponse(said.model_dump(exclude_none=True), status_code=status)


def keep_once(warehouse: sa.Engine, event: Event, caps: Caps, before: Callable[[sa.Connection], str | None]
              = lambda conn: None) -> str:
    """"stored" or "duplicate" (or what ``before`` decides first, e.g. "unrouted"), OverCap past a cap.
    Blocking: run it with ``run_in_threadpool``. Its own transaction, not the console's per-request
    one: only a verified event reaches the warehouse."""
    with warehouse.begin() as conn:
        if (outcome := before(conn)) is not None:
            return outcome
        return keep(conn, event, caps, datetime.now(UTC))


async def keep_or_refusal(warehouse: sa.Engine, event: Event, caps: Caps, sender: str,
                          before: Callable[[sa.Connection], str | None] = lambda conn: None) -> str | JSONResponse:
    """``keep_once`` off the event loop; past a cap, the 429 with its Retry-After."""
    try:
        return await run_in_threadpool(keep_once, warehouse, event, caps, before)
    except OverCap as exc:
        return refuse(429, str(exc), {"Retry-After": str(exc.retry_after)}, sender=sender)
