"""``POST /webhooks/ghl`` (``/crm-sync/webhooks/ghl`` in the api-server): GHL's webhooks for every location.

Authenticated by signature, not by Airflow's login: the raw body is checked against GHL's
signature before it is parsed, stored once in the warehouse inbox (before the answer), and the
location's DAGs are woken through an Airflow asset. The work happens in the DAG run.

Answers: 200 stored (or a repeated webhookId, not stored again); 202 stored, but no profile names
the location (kept as unrouted); 400 not a usable JSON event; 401 unsigned, forged, altered,
or a timestamp outside the window; 413 body too large. Bodies are logged only at DEBUG.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from crm_sync.paths import PROFILES_DIR
from crm_sync.profile import location_asset
from crm_sync.web.datamodels import Refusal, WebhookAnswer
from crm_sync.webhooks.inbox import BadEvent, Event, StaleEvent, parse, store
from crm_sync.webhooks.routing import profiles_for
from crm_sync.webhooks.settings import WebhookSettings
from crm_sync.webhooks.signature import SignatureError, verify
from crm_sync.webhooks.trigger import Coalescer, emit_asset_event

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])


@dataclass(frozen=True)
class Receiver:
    """What the route needs: its settings, the trigger, the warehouse and the profile folder."""

    settings: WebhookSettings
    wake: Coalescer
    warehouse: sa.Engine
    profiles_dir: Path


_first = threading.Lock()


def receiver() -> Receiver:
    """Built once, by the first request, while the others wait: the warehouse is migrated once."""
    with _first:
        return _receiver()


@functools.cache
def _receiver() -> Receiver:
    from crm_sync.warehouse.db import engine

    config = WebhookSettings.from_airflow()
    return Receiver(config, Coalescer(emit_asset_event, config.trigger_interval_s), engine(), PROFILES_DIR)


class TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    """The raw body, read no further than ``limit`` bytes."""
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


def _refuse(status: int, reason: str) -> JSONResponse:
    log.info("GHL webhook refused with %s: %s", status, reason)
    return JSONResponse(Refusal(detail=reason).model_dump(), status_code=status)


def _answer(status: int, answer: WebhookAnswer) -> JSONResponse:
    return JSONResponse(answer.model_dump(exclude_none=True), status_code=status)


def _store(target: Receiver, event: Event) -> tuple[bool, tuple[str, ...]]:
    """(new?, the profiles the event's location routes to); blocking work, run off the event loop.
    Its own transaction, not the console's per-request one: only a verified event reaches the warehouse."""
    profiles = profiles_for(event.location_id, target.profiles_dir)
    with target.warehouse.begin() as conn:
        return store(conn, event, bool(profiles)), profiles


REFUSALS = {code: {"model": Refusal} for code in (400, 401, 413)}


@router.post("/webhooks/ghl", response_model=WebhookAnswer, responses={202: {"model": WebhookAnswer}, **REFUSALS})
async def receive_ghl(request: Request, target: Annotated[Receiver, Depends(receiver)]) -> JSONResponse:
    config = target.settings
    try:
        raw = await _body(request, config.max_body_bytes)
    except TooLarge:
        return _refuse(413, f"body over {config.max_body_bytes} bytes")
    except ClientDisconnect:  # nothing stored: the sender gets no answer and delivers it again
        return _refuse(400, "the client went away before its body arrived")
    try:
        verify(raw, {k.lower(): v for k, v in request.headers.items()}, config)
        event = parse(raw, timedelta(seconds=config.tolerance_s))
    except (SignatureError, StaleEvent) as exc:
        return _refuse(401, str(exc))
    except BadEvent as exc:
        return _refuse(400, str(exc))
    log.debug("GHL webhook body: %s", raw[:2000])
    new, profiles = await run_in_threadpool(_store, target, event)
    if not new:
        return _answer(200, WebhookAnswer(status="duplicate"))
    if not profiles:
        log.info("GHL webhook stored unrouted: no profile names its location")
        return _answer(202, WebhookAnswer(status="unrouted"))
    target.wake.notify(location_asset(event.location_id))
    return _answer(200, WebhookAnswer(status="stored", profiles=list(profiles)))
