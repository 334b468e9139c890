"""Where the project's files live, overridable by environment for deployments."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROFILES_DIR = Path(os.environ.get("CRM_SYNC_PROFILES_DIR", PROJECT_ROOT / "include" / "profiles"))


def data_home() -> Path:
    """Home of the embedded warehouse and the reports: $CRM_SYNC_HOME, else .demo/ in the project."""
    home = Path(os.environ.get("CRM_SYNC_HOME", PROJECT_ROOT / ".demo"))
    home.mkdir(parents=True, exist_ok=True)
    return home
