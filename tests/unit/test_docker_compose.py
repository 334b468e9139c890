"""docker-compose.yaml (no Docker engine here): a CeleryExecutor stack that mounts this project."""

from __future__ import annotations

import re
from importlib.util import find_spec
from itertools import takewhile
from pathlib import Path

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


def test_the_stack_starts_only_with_its_secrets_set_and_encrypts_connections_at_rest():
    services = compose()["services"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET:?"), name
        assert env["AIRFLOW__CORE__FERNET_KEY"].startswith("${AIRFLOW_FERNET_KEY:?"), name
        assert "${WAREHOUSE_DB_PASSWORD:?" in env["AIRFLOW_CONN_WAREHOUSE_DEFAULT"], name
        for setting in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
            assert "airflow:${AIRFLOW_DB_PASSWORD:?" in env[setting], f"{name}: {setting} has a fixed password"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${AIRFLOW_DB_PASSWORD:?")
    text = (ROOT / "docker-compose.yaml").read_text()
    assert not re.search(r"\$\{[A-Z_]*(SECRET|KEY|PASSWORD)[A-Z_]*:-", text), "a secret has a default"
    example = (ROOT / ".env.example").read_text()
    for variable in ("AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY", "AIRFLOW_DB_PASSWORD", "WAREHOUSE_DB_PASSWORD"):
        assert re.search(rf"^{variable}=$", example, re.M), f".env.example lacks {variable}"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_every_published_port_is_on_loopback_by_default():
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("${AIRFLOW_API_BIND:-127.0.0.1}:"), f"{name} publishes {port} everywhere"


def test_the_login_comment_says_what_simple_auth_manager_does():
    """No fixed password: the installed SimpleAuthManager generates one and prints it."""
    env = compose()["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith(".SimpleAuthManager")
    user, role = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(":")
    airflow = Path(find_spec("airflow").submodule_search_locations[0])  # read, not imported (slow)
    source = (airflow / "api_fastapi/auth/managers/simple/simple_auth_manager.py").read_text()
    printed = re.search(r"Password for user '", source)
    assert printed, "SimpleAuthManager no longer prints generated passwords"
    header = "".join(takewhile(lambda line: line.startswith("#"),
                               (ROOT / "docker-compose.yaml").read_text().splitlines(keepends=True)))
    assert f'user "{user}" ({role})' in header and 'grep "Password for user"' in header
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] and "passwords file" in header
    assert not re.search(r"password\S*:\s*\S+/\S+", header, re.I), "the comment claims a fixed password"


def test_the_stack_runs_the_configuration_of_the_celery_demo():
    """Same executor settings as `make demo EXECUTOR=celery` (harness/celery_stack.py), two workers."""
    import inspect

    from harness import celery_stack
    from harness.airflow_runner import CELERY_WORKERS

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


def test_image_installs_no_test_tool_and_compose_mounts_no_harness():
    """Production containers carry the product only: the test harness and the test tools stay out."""
    installed = set(re.findall(r"requirements[\w.-]*\.txt", (ROOT / "Dockerfile").read_text()))
    assert installed == {"requirements.txt"}
    runtime = (ROOT / "requirements.txt").read_text().lower()
    for tool in ("pytest", "hypothesis", "schemathesis", "selenium", "openapi-schema-validator"):
        assert not re.search(rf"^{tool}\b", runtime, re.M), f"the image would install {tool}"
    for name, service in compose()["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert "harness" not in source and "tests" not in source, f"{name} mounts {source}"
            if source == "./include":
                assert {p.name for p in (ROOT / "include").iterdir()} <= {"profiles", "sql"}
