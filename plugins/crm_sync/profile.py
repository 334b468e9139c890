"""Sync profiles: one YAML file per (GHL location, app, field mapping), validated on load.

A profile is the whole description of a sync; DAGs, hooks and reconcile read it and
nothing else. Validation happens when the file is read, so a typo fails with the file,
the key and what was expected before any run starts.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crm_sync.paths import PROFILES_DIR

Side = Literal["ghl", "app"]
CONTACT_FIELDS = ("email", "phone", "first_name", "last_name", "company_name", "lead_source")


class ProfileError(ValueError):
    """A profile file that cannot be used, naming the file, the key and the expectation."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pagination(Strict):
    style: Literal["page"] = "page"
    page_param: str = "page"
    size_param: str = "per_page"
    size: int = Field(100, ge=1, le=1000)
    has_more: str = Field("meta.has_more", description="dotted path to the has-more flag in a list body")


class AppAuth(Strict):
    type: Literal["api_key_header", "bearer"]
    header: str = "Authorization"


class AppEntityApi(Strict):
    path: str = Field(pattern=r"^/")
    id_field: str = "id"
    updated_at_field: str = "updated_at"
    envelope: str | None = Field(None, description="key wrapping records in request and response bodies")
    changed_since_param: str
    changed_before_param: str | None = None
    lookup_param: str = Field("email", description="query parameter that finds a record by email")
    update_method: Literal["PUT", "PATCH"] = "PATCH"
    pagination: Pagination = Pagination()


class AppApi(Strict):
    conn_id: str
    auth: AppAuth
    rate_limit_per_second: float = Field(10.0, gt=0)
    entities: dict[Literal["contact"], AppEntityApi]


class GhlApi(Strict):
    conn_id: str = "ghl_default"
    page_limit: int = Field(500, ge=1, le=500)


class FieldMap(Strict):
    ghl: str
    app: str
    fallback: str | None = Field(None, description="value written when both sides are empty")


class EntityMapping(Strict):
    direction: Literal["both", "ghl_to_app", "app_to_ghl", "off"] = "both"
    conflict: Literal["latest_wins", "ghl", "app"] = Field(
        "latest_wins", description="who wins a field both sides changed: latest updated-at, or a source of truth")
    fields: dict[str, FieldMap]

    def writes_to(self, side: Side) -> bool:
        return self.direction == "both" or self.direction == ("app_to_ghl" if side == "ghl" else "ghl_to_app")


class Profile(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    dag_id: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    description: str = ""
    schedule: str = "0 0 * * *"
    start_date: date
    default_region: str = Field("US", pattern=r"^[A-Z]{2}$")
    overlap_minutes: int = Field(5, ge=0)
    dry_run: bool = False
    quality_threshold: float = Field(0.05, ge=0, le=1, description="share of bad rows that fails the run")
    ghl: GhlApi = GhlApi()
    app: AppApi
    entities: dict[Literal["contact"], EntityMapping]

    def contact_fields(self) -> dict[str, FieldMap]:
        return self.entities["contact"].fields

    def record_fields(self, side: Side) -> tuple[str, str]:
        """The names of a contact's id and updated-at fields on one side."""
        if side == "ghl":
            return "id", "dateUpdated"
        api = self.app.entities["contact"]
        return api.id_field, api.updated_at_field


def _describe(err: dict) -> str:
    key = ".".join(str(part) for part in err["loc"]) or "<top level>"
    return f"key '{key}': {err['msg']}" + (f" (got {err['input']!r})" if err["type"] != "missing" else "")


def parse_profile(text: str, source: str) -> Profile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: expected a mapping at the top level")
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ProfileError(f"{source}: {problems}") from None
    unknown = set(profile.contact_fields()) - set(CONTACT_FIELDS)
    if unknown:
        raise ProfileError(f"{source}: key 'entities.contact.fields': unknown canonical field(s) {sorted(unknown)}; "
                           f"expected some of {list(CONTACT_FIELDS)}")
    return profile


def load_profile(path: Path) -> Profile:
    return parse_profile(path.read_text(encoding="utf-8"), str(path))


def load_profiles(directory: Path = PROFILES_DIR) -> list[Profile]:
    return [load_profile(path) for path in sorted(directory.glob("*.yaml"))]


def profile_by_name(name: str, directory: Path = PROFILES_DIR) -> Profile:
    return load_profile(directory / f"{name}.yaml")
