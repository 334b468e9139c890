"""docker-compose.yaml (no Docker engine here): a CeleryExecutor stack that mounts this project."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT

AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_stack_has_postgres_redis_and_every_airflow_3_component():
    services = compose()["services"]
    assert {"postgres", "redis"} | AIRFLOW_SERVICES <= set(services)
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:") or "@redis:" in env[
            "AIRFLOW__CELERY__BROKER_URL"]
        assert "@postgres/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW_CONN_WAREHOUSE_DEFAULT"].startswith("postgresql")
        mounts = {volume.split(":")[1] for volume in services[name]["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts
        for mount in services[name]["volumes"]:
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    for dependency in ("postgres", "redis"):
        assert services[dependency]["healthcheck"]["test"]


def test_image_pins_the_same_airflow_as_requirements():
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"apache/airflow:{pinned}-python3.11" in dockerfile
    assert compose()["x-airflow-common"]["build"] == "."


def test_warehouse_database_is_created_by_the_init_script():
    mounts = compose()["services"]["postgres"]["volumes"]
    script = next(m.split(":")[0] for m in mounts if "docker-entrypoint-initdb.d" in m)
    assert "CREATE DATABASE warehouse" in (ROOT / script).read_text()


def test_the_stack_runs_the_configuration_of_the_celery_demo():
    """Same executor settings as `make demo EXECUTOR=celery` (include/celery_stack.py), two workers."""
    import inspect

    from include import celery_stack
    from include.airflow_runner import CELERY_WORKERS

    services = compose()["services"]
    demo_settings = set(re.findall(r'"(AIRFLOW__[A-Z_]+)"', inspect.getsource(celery_stack.celery_services_env)))
    assert demo_settings >= {"AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CELERY__BROKER_URL"}
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert demo_settings <= set(env), f"{name} lacks {demo_settings - set(env)}"
        assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "2"
    assert services["airflow-worker"]["deploy"]["replicas"] == CELERY_WORKERS == 2
    assert services["airflow-worker"]["command"][:3] == ["airflow", "celery", "worker"]
    assert services["airflow-dag-processor"]["command"] == ["airflow", "dag-processor"]
