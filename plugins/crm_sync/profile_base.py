"""The base of every profile section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A profile section: frozen, and a key it does not know is an error (a typo fails on load)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ProfileError(ValueError):
    """A profile file that cannot be used, naming the file, the key and the expectation."""
