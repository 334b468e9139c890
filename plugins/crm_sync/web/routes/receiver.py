"""``POST /webhooks/ghl`` (``/crm-sync/webhooks/ghl`` in the api-server): GHL's webhooks for every location.

Authenticated by signature, not by Airflow's login: the raw body is checked against GHL's
signature before it is parsed, stored once in the warehouse inbox (before the answer) when a
profile names its location and the location is within its caps, and the location's DAGs are woken
through an Airflow asset. The work happens in the DAG run. After the answer, the receiver prunes
expired inbox events (crm_sync.webhooks.retention).

Answers: 200 stored (or a repeated webhookId, not stored again); 202 no profile names the location
(counted in webhook_unrouted, the payload not kept); 400 not a usable JSON event; 401 unsigned,
forged, altered, a timestamp outside the window, or another app's appId; 413 body too large; 429
the location is past a cap (Retry-After); 503 a setting is unusable (named in the answer and the
log). Bodies are logged only at DEBUG.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from crm_sync.paths import PROFILES_DIR
from crm_sync.profile import location_asset
from crm_sync.web.datamodels import WebhookAnswer
from crm_sync.web.webhook_intake import answer, body_or_refusal, keep_or_refusal, refusals, refuse
from crm_sync.webhooks import signature
from crm_sync.webhooks.inbox import BadEvent, Caps, Event, StaleEvent, count_unrouted, parse
from crm_sync.webhooks.retention import Pruner
from crm_sync.webhooks.routing import profiles_for
from crm_sync.webhooks.settings import ConfigError, WebhookSettings
from crm_sync.webhooks.signature import SignatureError, verify
from crm_sync.webhooks.trigger import Coalescer, emit_asset_event

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])


@dataclass(frozen=True)
class Receiver:
    """What the route needs: its settings, the trigger, the warehouse, the profile folder and the pruner."""

    settings: WebhookSettings
    wake: Coalescer
    warehouse: sa.Engine
    profiles_dir: Path
    pruner: Pruner

    @classmethod
    def build(cls, settings: WebhookSettings, wake: Coalescer, warehouse: sa.Engine, profiles_dir: Path) -> Receiver:
        """ConfigError when a key the settings name cannot be loaded."""
        signature.check(settings)
        return cls(settings, wake, warehouse, profiles_dir,
                   Pruner(warehouse, profiles_dir, settings.prune_interval_s, settings.retention_days))

    @property
    def caps(self) -> Caps:
        config = self.settings
        return Caps(config.max_events_per_minute, config.max_stored_bytes, config.prune_interval_s)


_first = threading.Lock()


def receiver() -> Receiver:
    """Built once, by the first request, while the others wait: the warehouse is migrated once.
    An unusable setting is a 503 naming it (logged as an error), and is read again by the next request."""
    with _first:
        try:
            return _receiver()
        except ConfigError as exc:
            log.error("the GHL webhook receiver cannot start: %s", exc)
            raise HTTPException(503, f"the receiver is not configured: {exc}") from None


def check_settings() -> bool:
    """Read and load the receiver's settings when the api-server starts, so a missing or unusable key
    is an error in its start-up log naming the setting, not news brought by GHL's first event."""
    try:
        signature.check(WebhookSettings.from_airflow())
    except ConfigError as exc:
        log.error("the GHL webhook receiver cannot start: %s; it answers 503 until that is fixed", exc)
        return False
    return True


def prune_while_quiet(target: Callable[[], Receiver] = lambda: receiver(),
                      interval_s: float | None = None) -> threading.Event:
    """Prune the inbox every interval even when no webhook arrives (GHL stopped sending, a location
    was dropped): answers prune too, but a quiet receiver would otherwise keep expired events.
    Runs in a daemon thread until the returned event is set."""
    if interval_s is None:
        try:
            interval_s = WebhookSettings.from_airflow().prune_interval_s
        except ConfigError:
            interval_s = WebhookSettings().prune_interval_s  # the error is logged by check_settings

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                target().pruner.maybe_prune()
            except HTTPException:  # not configured: receiver() logged why
                continue
            except Exception:  # noqa: BLE001 - the warehouse was away or busy: try again next interval
                log.exception("pruning the webhook inbox failed; trying again in %s s", interval_s)

    threading.Thread(target=loop, name="crm-sync webhook inbox pruning", daemon=True).start()
    return stop


@functools.cache
def _receiver() -> Receiver:
    from crm_sync.warehouse.db import engine

    config = WebhookSettings.from_airflow()
    signature.check(config)  # before the warehouse: a bad key never waits on a migration
    return Receiver.build(config, Coalescer(emit_asset_event, config.trigger_interval_s), engine(), PROFILES_DIR)


def _count_unrouted(event: Event) -> Callable[[sa.Connection], str]:
    """Instead of storing: count an event no profile routes (its payload kept nowhere)."""
    def count(conn: sa.Connection) -> str:
        count_unrouted(conn, event, datetime.now(UTC))
        return "unrouted"
    return count


def _app_mismatch(event: Event, app_id: str) -> str | None:
    """Why the event is not for this app, when ``webhook_app_id`` names one; None when it is."""
    if not app_id or event.app_id == app_id:
        return None
    return "no appId, and webhook_app_id is set" if event.app_id is None else "appId is not webhook_app_id"


@router.post("/webhooks/ghl", response_model=WebhookAnswer,
             responses={202: {"model": WebhookAnswer}, **refusals(400, 401, 413, 429, 503)})
async def receive_ghl(request: Request, target: Annotated[Receiver, Depends(receiver)]) -> JSONResponse:
    said = await _receive(request, target)
    said.background = BackgroundTask(target.pruner.maybe_prune)  # after the answer, when due
    return said


async def _receive(request: Request, target: Receiver) -> JSONResponse:
    config = target.settings
    raw = await body_or_refusal(request, config.max_body_bytes, "GHL")
    if isinstance(raw, JSONResponse):
        return raw
    try:
        verify(raw, {k.lower(): v for k, v in request.headers.items()}, config)
        event = parse(raw, timedelta(seconds=config.tolerance_s))
    except (SignatureError, StaleEvent) as exc:
        return refuse(401, str(exc))
    except BadEvent as exc:
        return refuse(400, str(exc))
    if reason := _app_mismatch(event, config.app_id):
        return refuse(401, reason)
    log.debug("GHL webhook body: %s", raw[:2000])
    profiles = await run_in_threadpool(profiles_for, event.location_id, target.profiles_dir)
    outcome = await keep_or_refusal(target.warehouse, event, target.caps, "GHL",
                                    (lambda conn: None) if profiles else _count_unrouted(event))
    if isinstance(outcome, JSONResponse):
        return outcome
    if outcome == "duplicate":
        return answer(200, WebhookAnswer(status="duplicate"))
    if outcome == "unrouted":
        log.info("GHL webhook counted unrouted, not stored: no profile names its location")
        return answer(202, WebhookAnswer(status="unrouted"))
    target.wake.notify(location_asset(event.location_id))
    return answer(200, WebhookAnswer(status="stored", profiles=list(profiles)))
