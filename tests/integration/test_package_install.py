"""`pip install .` into a fresh virtual environment gives a crm_sync that renders a run's report on its own:
the report template is package data, not a file read from the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow]  # builds a virtual environment and a wheel

REPORT_A_RUN = textwrap.dedent("""
    import crm_sync
    from crm_sync.pipeline.context import RunContext, log_step
    from crm_sync.pipeline.report import report
    from crm_sync.pipeline.run_state import PIPELINE
    from crm_sync.profile import profile_by_name
    from crm_sync.warehouse.db import engine

    ctx = RunContext(profile=profile_by_name("gymdesk"), run_id="manual__2026-12-01T10:00:00+00:00", run_type="manual")
    with engine().begin() as conn:  # a run that read 3 contacts a side, changed nothing and finished every step
        for side in ("ghl", "app"):
            log_step(conn, ctx, "extract", {"extracted": 3, "landed": 0, "unchanged": 3, "by_entity": {"contact": 3},
                                            "window_mode": "watermark", "api": {}}, side=side)
        for step in PIPELINE[1:]:
            log_step(conn, ctx, step, {"api": {"ghl": {}, "app": {}}} if step == "load" else {})
    stats = report(ctx)
    print("crm_sync:", crm_sync.__file__)
    print("report:", stats["report"])
""")


CLEAN = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "WAREHOUSE_URL", "CRM_SYNC", "PYTHON"))}


def run(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(args, env=CLEAN, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result


def test_the_installed_package_renders_a_report_without_the_checkout(tmp_path):
    source = tmp_path / "source"  # what `pip install .` reads: pyproject.toml and the package
    shutil.copytree(ROOT / "plugins" / "crm_sync", source / "plugins" / "crm_sync",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", source)
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    # built as `make venv` builds the editable install: setuptools (and wheel) in pip's isolated build environment
    run(str(python), "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "--quiet", str(source))
    # the dependencies (Airflow, SQLAlchemy, Jinja...) from this interpreter's site-packages, as a plain path:
    # its .pth files, the editable crm_sync among them, are not read from there
    site = Path(run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    shared = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "shared_dependencies.pth").write_text("\n".join(sorted(shared)) + "\n")

    work = tmp_path / "elsewhere"
    shutil.copytree(ROOT / "include" / "profiles", work / "profiles")  # the deployment's own profiles
    env = {**CLEAN, "CRM_SYNC_HOME": str(work / "home"), "CRM_SYNC_PROFILES_DIR": str(work / "profiles"),
           "WAREHOUSE_URL": f"sqlite:///{work / 'warehouse.db'}", "AIRFLOW_HOME": str(work / "airflow")}
    result = subprocess.run([str(python), "-c", REPORT_A_RUN], cwd=work, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    said = dict(line.split(": ", 1) for line in result.stdout.splitlines() if line.startswith(("crm_sync:", "report:")))
    installed = Path(said["crm_sync"]).resolve()
    assert installed.is_relative_to(venv.resolve()) and not installed.is_relative_to(ROOT)
    page = Path(said["report"])
    assert page.is_relative_to(work / "home") and "Sync report: gymdesk" in page.read_text()
