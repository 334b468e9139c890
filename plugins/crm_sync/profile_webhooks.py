"""The app's push: how a profile's ``app.webhooks`` block says where an app's webhook is signed and
what its body names, so ``/crm-sync/webhooks/app/<profile>`` can verify it before parsing and keep
it in the same inbox as GHL's events (issue 25).

Apps sign differently (a header, hex or base64, sometimes a timestamp in the signed text), so the
signature is described, not coded; the secret itself is never in the profile: it is the extra
``secret_extra`` of the app's Airflow connection.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from crm_sync.profile_base import Strict

Entity = Literal["contact", "task", "note", "appointment"]


class WebhookSignature(Strict):
    """HMAC-SHA256 over the raw body (or ``{timestamp}.{body}`` when ``timestamp_header`` is set and
    ``signed_text`` says so), sent in ``header`` as hex or base64, after an optional ``prefix``."""

    header: str = Field("X-Signature", min_length=1, description="header holding the signature")
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = Field("", description="text before the signature in the header, e.g. 'sha256='")
    timestamp_header: str | None = Field(None, description="header with the send time (unix seconds or ISO)")
    tolerance_s: int = Field(300, ge=1, description="how far the timestamp may be from now")
    signed_text: Literal["body", "timestamp.body"] = Field(
        "body", description="what the HMAC covers: the raw body, or the timestamp header, a dot and the body")
    secret_extra: str = Field("webhook_secret", min_length=1,
                              description="extra of the app's connection holding the secret")

    @model_validator(mode="after")
    def _timestamp_signed_needs_its_header(self) -> WebhookSignature:
        if self.signed_text == "timestamp.body" and not self.timestamp_header:
            raise ValueError("signed_text timestamp.body needs timestamp_header (the header the timestamp is in)")
        if self.timestamp_header and self.signed_text == "body":
            # Anyone can resend an old signed body with a fresh timestamp: the tolerance would guard nothing.
            raise ValueError("a timestamp_header the signature does not cover proves nothing: set signed_text "
                             "timestamp.body, or leave timestamp_header out")
        return self


class WebhookEventShape(Strict):
    """Where one event's facts are in the JSON body (dotted paths)."""

    id: str | None = Field("id", description="the event's own id; null: the app sends none (body digest dedups)")
    type: str = Field("type", min_length=1, description="the event's type, e.g. member.updated")
    entity: str | None = Field(None, description="path to the entity's name; null: read from ``types``")
    types: dict[str, Entity] = Field(
        default_factory=dict, description="event type -> entity: a key is a whole type (member.updated) or the part "
                                          "before its first dot (member); also maps the app's names for ``entity``")
    record_id: str = Field("data.id", min_length=1, description="the changed record's id on the app")
    contact_id: str | None = Field(None, description="tasks, notes, appointments: their contact's id on the app")

    @model_validator(mode="after")
    def _entity_is_findable(self) -> WebhookEventShape:
        if self.entity is None and not self.types:
            raise ValueError("say where an event's entity is: entity (a path in the body) or types (type -> entity)")
        return self


class AppWebhooks(Strict):
    """An app that pushes its changes: the receiver path is ``/crm-sync/webhooks/app/<profile>``."""

    signature: WebhookSignature = WebhookSignature()
    event: WebhookEventShape = Field(description="where an event names its type, entity and record (required)")
    assumed: bool = Field(False, description="the app publishes no webhook documentation: this shape is our guess")
    docs_url: str | None = Field(None, description="where the app documents its webhooks")


def app_asset(profile_name: str) -> str:
    """The Airflow asset an app's webhooks update: the profile's fast lane watches it."""
    return f"crm_sync_app_{profile_name}"
