"""Two runs of one profile never reconcile or load at the same time, and a killed holder frees the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from crm_sync.warehouse.db import create
from crm_sync.warehouse.lock import ProfileBusy, profile_lock

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration]

HOLD = textwrap.dedent("""
    import sys, time
    from crm_sync.warehouse.db import create
    from crm_sync.warehouse.lock import profile_lock
    with profile_lock(create(sys.argv[1]), "gymdesk", "load"):
        print("held", flush=True)
        time.sleep(120)
""")


def test_a_second_load_waits_for_the_lock_and_gets_it_when_the_holder_is_killed(warehouse_url, tmp_path,
                                                                              monkeypatch):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}", "CRM_SYNC_HOME": str(tmp_path)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, warehouse_url], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path))
        eng = create(warehouse_url)
        with pytest.raises(ProfileBusy, match="another run of profile gymdesk"), \
                profile_lock(eng, "gymdesk", "load", wait_s=1):
            pass
        with profile_lock(eng, "gymflow", "load", wait_s=1):  # other profiles are not held up
            pass
        holder.send_signal(signal.SIGKILL)  # a task killed mid-load: no cleanup code runs
        holder.wait(timeout=30)
        with profile_lock(eng, "gymdesk", "load", wait_s=10):  # raises ProfileBusy if the lock outlived its holder
            pass
        eng.dispose()
    finally:
        holder.kill()
