"""``POST /webhooks/app/{profile}`` (``/crm-sync/webhooks/app/<profile>`` in the api-server): an app's
own webhooks, for a profile whose ``app.webhooks`` block says how the app signs and shapes them.

As for GHL's (crm_sync.web.routes.receiver, whose settings, caps, warehouse and trigger it shares):
the raw body is read within ``webhook_max_body_bytes``, its HMAC-SHA256 checked with the secret of
the app's connection before anything parses it, the event stored once in the inbox (source
``app:<profile>``, deduplicated by the app's event id or the body's digest) within the caps, and the
profile's app asset woken; the work happens in the DAG run it starts.

Answers: 200 stored, or a duplicate (not stored again); 202 a verified event of a type the profile
maps to no entity (``ignored``, not stored); 400 not a usable event (the rule named, the body never
echoed); 401 unsigned, forged, altered, or its timestamp outside the tolerance; 404 no such profile,
or one whose app does not push (no ``app.webhooks``): a wrong URL should fail loudly in the app's
delivery log, not vanish into a 2xx; 413 too large; 429 past a cap (Retry-After); 503 the app's
connection or its secret extra is missing (named; never the value), or a receiver setting is unusable.
"""

from __future__ import annotations

import functools
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from crm_sync.profile_webhooks import app_asset
from crm_sync.web.datamodels import WebhookAnswer
from crm_sync.web.routes.receiver import Receiver, receiver
from crm_sync.web.webhook_intake import answer, body_or_refusal, keep_or_refusal, refusals, refuse
from crm_sync.webhooks import app_events
from crm_sync.webhooks.app_secrets import AppSecrets, SecretMissing
from crm_sync.webhooks.app_signature import verify
from crm_sync.webhooks.inbox import BadEvent, StaleEvent
from crm_sync.webhooks.routing import app_profile
from crm_sync.webhooks.signature import SignatureError

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])


@functools.cache
def app_secrets() -> AppSecrets:
    """One cache of the apps' secrets per api-server process."""
    return AppSecrets()


@router.post("/webhooks/app/{profile}", response_model=WebhookAnswer,
             responses={202: {"model": WebhookAnswer}, **refusals(400, 401, 404, 413, 429, 503)})
async def receive_app(profile: str, request: Request, target: Annotated[Receiver, Depends(receiver)],
                      secrets: Annotated[AppSecrets, Depends(app_secrets)]) -> JSONResponse:
    said = await _receive(profile, request, target, secrets)
    said.background = BackgroundTask(target.pruner.maybe_prune)  # after the answer, when due
    return said


async def _receive(name: str, request: Request, target: Receiver, secrets: AppSecrets) -> JSONResponse:
    sender = f"app {name[:80]!r}"
    profile = await run_in_threadpool(app_profile, name, target.profiles_dir)
    if profile is None:
        return refuse(404, "no profile of that name receives app webhooks (its app.webhooks is unset, or the "
                           "profile is unknown or invalid)", sender=sender)
    hooks = profile.app.webhooks
    raw = await body_or_refusal(request, target.settings.max_body_bytes, sender)
    if isinstance(raw, JSONResponse):
        return raw
    try:
        secret = await run_in_threadpool(secrets.secret, profile.app.conn_id, hooks.signature.secret_extra)
    except SecretMissing as exc:
        log.error("app webhooks of profile %s cannot be verified: %s", name, exc)
        return refuse(503, str(exc), sender=sender)
    try:
        sent_at = verify(raw, {k.lower(): v for k, v in request.headers.items()}, hooks.signature, secret)
        event = app_events.parse(raw, profile.name, profile.ghl.location_id, hooks, sent_at)
    except (SignatureError, StaleEvent) as exc:
        return refuse(401, str(exc), sender=sender)
    except BadEvent as exc:
        return refuse(400, str(exc), sender=sender)
    except app_events.Unmapped as exc:
        log.info("%s webhook ignored, not stored: %s", sender, exc)
        return answer(202, WebhookAnswer(status="ignored"))
    log.debug("%s webhook body: %s", sender, raw[:2000])
    outcome = await keep_or_refusal(target.warehouse, event, target.caps, sender)
    if isinstance(outcome, JSONResponse):
        return outcome
    if outcome == "duplicate":
        return answer(200, WebhookAnswer(status="duplicate"))
    target.wake.notify(app_asset(profile.name))
    return answer(200, WebhookAnswer(status="stored", profiles=[profile.name]))
