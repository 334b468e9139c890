"""The shared Airflow start-up of the DAG tests (tests/airflow_zygote.py): each run reads its own
environment, as a fresh `airflow` process would, and its output and exit code come back as run's."""

from __future__ import annotations

from tests.conftest import airflow


def test_each_run_reads_its_own_environment_and_returns_its_output_and_exit_code(airflow_home):
    for zone in ("Europe/Lisbon", "America/New_York"):
        result = airflow(airflow_home, {"AIRFLOW__CORE__DEFAULT_TIMEZONE": zone}, "config", "get-value", "core",
                         "default_timezone")
        assert (result.returncode, result.stdout.strip()) == (0, zone), result.stderr
    missing = airflow(airflow_home, {}, "dags", "test", "no_such_dag")
    assert missing.returncode != 0 and "no_such_dag" in missing.stdout + missing.stderr
