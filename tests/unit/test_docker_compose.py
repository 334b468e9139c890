"""docker-compose.yaml (no Docker engine here): a CeleryExecutor stack that mounts this project."""

from __future__ import annotations

import re
import shlex
from importlib.util import find_spec
from itertools import takewhile
from pathlib import Path

import yaml
from packaging.version import Version

from tests.conftest import ROOT

# The first versions with no known advisory: pip 26.2 (CVE-2025-8869, CVE-2026-1703, CVE-2026-3219,
# CVE-2026-6357, CVE-2026-8643, CVE-2026-13346), setuptools 83.0.0 (CVE-2025-47273, CVE-2026-59890).
FIXED = {"pip": Version("26.2"), "setuptools": Version("83.0.0")}
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
        assert env["AIRFLOW__API__SECRET_KEY"].startswith("${AIRFLOW_API_SECRET_KEY:?"), name  # CSRF tokens
        assert env["AIRFLOW__CORE__FERNET_KEY"].startswith("${AIRFLOW_FERNET_KEY:?"), name
        assert "${WAREHOUSE_DB_PASSWORD:?" in env["AIRFLOW_CONN_WAREHOUSE_DEFAULT"], name
        for setting in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
            assert "airflow:${AIRFLOW_DB_PASSWORD:?" in env[setting], f"{name}: {setting} has a fixed password"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${AIRFLOW_DB_PASSWORD:?")
    text = (ROOT / "docker-compose.yaml").read_text()
    assert not re.search(r"\$\{[A-Z_]*(SECRET|KEY|PASSWORD)[A-Z_]*:-", text), "a secret has a default"
    example = (ROOT / ".env.example").read_text()
    for variable in ("AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_FERNET_KEY", "AIRFLOW_DB_PASSWORD", "WAREHOUSE_DB_PASSWORD",
                     "REDIS_PASSWORD"):
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


def test_redis_requires_its_password_and_the_broker_url_carries_it():
    services = compose()["services"]
    redis = services["redis"]
    required = re.compile(r"\$\{REDIS_PASSWORD:\?[^}]+\}")
    assert redis["command"][:2] == ["redis-server", "--requirepass"] and required.fullmatch(redis["command"][2])
    assert len(redis["command"]) == 3 and not any("protected-mode" in arg for arg in redis["command"])
    # the healthcheck logs in through redis-cli's REDISCLI_AUTH, and is healthy only on PONG
    assert required.fullmatch(redis["environment"]["REDISCLI_AUTH"])
    assert redis["healthcheck"]["test"] == ["CMD-SHELL", "redis-cli ping | grep -qx PONG"]
    for name in AIRFLOW_SERVICES:
        broker = services[name]["environment"]["AIRFLOW__CELERY__BROKER_URL"]
        assert re.fullmatch(rf"redis://:{required.pattern}@redis:6379/\d+", broker), f"{name}: {broker}"


def test_project_folders_are_mounted_read_only_and_what_is_written_goes_to_named_volumes():
    data = compose()
    named = set(data["volumes"])
    for name, service in data["services"].items():
        for mount in service.get("volumes", []):
            source, target, *options = mount.split(":")
            if source.startswith("./"):
                assert options and "ro" in options[0].split(","), f"{name} mounts {source} writable"
            else:
                assert source in named and not options, f"{name}: {mount}"
    common = data["x-airflow-common"]
    home = common["environment"]["CRM_SYNC_HOME"]  # the embedded warehouse and the reports
    assert f"crm-sync-data:{home}" in common["volumes"]
    # made in the image by its user, so that a new named volume is that user's (and group 0's), not root's
    dockerfile = (ROOT / "Dockerfile").read_text()
    made = re.search(rf"^RUN mkdir -p -m 0775 {re.escape(home)}$", dockerfile, re.M)
    assert made and dockerfile.rfind("\nUSER airflow\n", 0, made.start()) != -1


def _uid(user: str) -> str:
    """The uid part of a compose ``user:``, with ``${VAR:-default}`` taken at its default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(user)).split(":")[0]


def test_every_service_runs_as_a_non_root_user():
    for name, service in compose()["services"].items():
        assert "user" in service, f"{name} runs as its image's default user"
        assert _uid(service["user"]) not in {"", "0", "root"}, f"{name} runs as root"
    assert compose()["x-airflow-common"]["user"] == "${AIRFLOW_UID:-50000}:0"  # Airflow's image: any uid, group 0
    assert not re.search(r"^AIRFLOW_UID=0*$", (ROOT / ".env.example").read_text(), re.M)
    users = re.findall(r"^USER (\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert users and users[-1] not in {"root", "0"}


def _pins() -> dict[str, str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return dict(line.split("==", 1) for line in lines if "==" in line)


def test_pip_and_setuptools_are_pinned_at_versions_without_known_advisories_and_installed_first():
    pins = _pins()
    for package, fixed in FIXED.items():
        assert Version(pins[package]) >= fixed, f"requirements.lock pins {package} {pins[package]} (< {fixed})"
    # `make venv`: the first install after `python -m venv` brings the locked pip and setuptools
    makefile = (ROOT / "Makefile").read_text()
    rule = makefile[makefile.index("$(STAMP): "):].split("\n\n")[0].splitlines()
    installs = [shlex.split(line.strip()) for line in rule if "-m pip install" in line]
    assert installs[0][-4:] == ["-c", "requirements.lock", "pip", "setuptools"]
    assert "requirements-dev.txt" in installs[1]
    # the image: the same, before crm-sync's requirements
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    run = next(line for line in dockerfile.splitlines() if line.startswith("RUN pip install"))
    first, second = run.removeprefix("RUN ").split(" && ")
    assert shlex.split(first)[-4:] == ["-c", "/opt/crm-sync/requirements.lock", "pip", "setuptools"]
    assert "/opt/crm-sync/requirements.txt" in second
