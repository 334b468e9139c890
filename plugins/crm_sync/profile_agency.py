"""The profile's ``agency`` section (issue 26): one agency-level GHL install syncs every sub-account
(location) it is installed on, each with its own DAG, found by discovery instead of listed by hand.

Discovery (a task, ``crm_sync.pipeline.discover``) lists the installed locations through GHL and
keeps them in the warehouse table ``agency_location``. Parsing the DAG files reads that table, never
GHL (``read_book``); when the warehouse cannot be read, the last book read is used from a snapshot
file, so a database blip does not make every location's DAG vanish.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import Field, field_validator

from crm_sync.profile_base import Strict

PLACEHOLDERS = ("{location_id}", "{key}")


class Agency(Strict):
    """An agency install: its connection, and how each discovered location finds its app connection."""

    conn_id: str = Field(description="the agency's GHL connection: OAuth client id and secret, the agency's "
                         "refresh token (user_type Company), company_id and app_id in its extra")
    app_conn_id: str = Field(description="naming rule of each location's app connection, e.g. gymdesk_{location_id} "
                             "({location_id}: GHL's id; {key}: its lowercase key)")
    app_connections: dict[str, str] = Field(default_factory=dict,
                                            description="location id -> app connection, before the naming rule")
    discover_schedule: str = Field("*/30 * * * *", description="cron of the discovery DAG <dag_id>_discover")
    pool: str | None = Field(None, description="Airflow pool every discovered location's GHL tasks share; "
                             "default crm_sync_<conn_id>")
    pool_slots: int = Field(16, ge=1, description="slots of that pool: how many locations call GHL at once")
    only: list[str] = Field(default_factory=list, description="location ids to sync; empty: every installed one")

    @field_validator("app_conn_id")
    @classmethod
    def _rule(cls, rule: str) -> str:
        if not any(placeholder in rule for placeholder in PLACEHOLDERS):
            raise ValueError(f"agency.app_conn_id {rule!r} names one connection for every location; "
                             "use {location_id} or {key} in it, or list agency.app_connections")
        return rule

    @property
    def pool_name(self) -> str:
        return self.pool or f"crm_sync_{self.conn_id}"

    def app_conn_for(self, location_id: str, key: str) -> str:
        """The location's app connection: the mapping's, else the naming rule's."""
        return self.app_connections.get(location_id) or self.app_conn_id.format(location_id=location_id, key=key)


@dataclass(frozen=True)
class DiscoveredLocation:
    """One row of ``agency_location``: what the last discovery knew of a location."""

    profile: str
    location_id: str
    key: str
    name: str
    installed: bool
    app_conn_id: str | None
    app_conn_ready: bool
    first_seen_at: datetime
    checked_at: datetime
    uninstalled_at: datetime | None = None
    address: str | None = None

    @property
    def status(self) -> str:
        """syncing, waiting (for its app connection) or uninstalled."""
        if not self.installed:
            return "uninstalled"
        return "syncing" if self.app_conn_ready else "waiting"


def read_book(profile: str) -> list[DiscoveredLocation]:
    """Every location discovered for the agency ``profile``, ordered by key, from the warehouse (read
    only, no migration: parsing must not change the schema), else from the last snapshot."""
    raise NotImplementedError("issue 26: implemented by the agency-book work")
