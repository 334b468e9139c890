"""`make demo EXECUTOR=celery`: the demo through the CeleryExecutor on this machine's PostgreSQL and Redis."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_ADMIN_URL, ROOT, airflow_env
from tests.e2e.test_demo import demo_processes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # three backfill runs and a triggered one: ~5 min here
LAST_LINE = re.compile(r"^demo: profile=(\S+) executor=celery writes=(\d+) rerun_writes=(\d+) quarantined=(\d+) "
                       r"report=(\S+)$")


def demo_databases() -> set[str]:
    with sa.create_engine(PG_ADMIN_URL).connect() as conn:
        return set(conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE 'crm_sync_airflow_%' "
                                        "OR datname LIKE 'crm_sync_warehouse_%'")).scalars())


def test_the_celery_demo_runs_on_two_workers_then_leaves_no_process_database_or_broker_key():
    import redis

    env = airflow_env(Path("/nonexistent"))
    env.pop("AIRFLOW_HOME")
    processes_before, databases_before = demo_processes(), demo_databases()
    claimed_before = {n for n in range(16) if redis.Redis(db=n).exists("crm_sync:claimed_by")}
    result = subprocess.run([sys.executable, "-m", "harness.demo", "--executor", "celery"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    match = LAST_LINE.match(result.stdout.strip().splitlines()[-1])
    assert match, result.stdout[-2000:]
    dag_id, writes, rerun_writes, quarantined, report = match.groups()
    assert dag_id == "ghl_gymdesk" and int(writes) > 0 and int(rerun_writes) == 0 and int(quarantined) == 7
    assert Path(report).is_file()
    # every task ran in a Celery worker, and both workers took some
    logs = ROOT / ".demo" / "backfill"
    ran = [len(re.findall(r"final_state=success", (logs / f"celery-worker-{n}.log").read_text())) for n in (1, 2)]
    assert all(ran) and sum(ran) == 4 * 8, ran  # 3 backfill runs and the rerun, 8 tasks each
    assert "CeleryExecutor" in (logs / "scheduler.log").read_text()
    assert {pid for pid in demo_processes() if pid not in processes_before} == set()
    assert demo_databases() == databases_before
    assert {n for n in range(16) if redis.Redis(db=n).exists("crm_sync:claimed_by")} == claimed_before
