"""The profile's ``matching`` section: what identity matching should also know about a business's
people (crm_sync.pipeline.names), such as nicknames its customers use that the public list lacks."""

from __future__ import annotations

from pydantic import Field, field_validator

from crm_sync.profile_base import Strict


class Matching(Strict):
    """Identity matching's own additions, on top of the nicknames package's list and crm-sync's curated
    supplement (crm_sync.pipeline.names)."""

    nicknames: list[list[str]] = Field(
        default_factory=list, max_length=10_000,
        description="groups of first names that are one person's, e.g. [[Xander, Alexander], [Gosha, Georgy]]")

    @field_validator("nicknames")
    @classmethod
    def _groups(cls, groups: list[list[str]]) -> list[list[str]]:
        """Each group names at least two different first names."""
        for number, group in enumerate(groups, 1):
            if len({name.strip().casefold() for name in group}) < 2 or any(not name.strip() for name in group):
                raise ValueError(f"matching.nicknames group {number} {group!r}: a group lists two or more "
                                 "different, non-empty first names")
        return groups
