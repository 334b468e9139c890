"""docker-compose.yaml's Redis, run as compose would run it (no Docker engine here: this machine's
redis-server with the service's own command): it refuses a client without the password, and the
Celery broker URL the Airflow containers get, and the service's healthcheck, get in with it."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import time

import pytest
import redis
import yaml
from kombu import Connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration]
REQUIRED = re.compile(r"\$\{([A-Z_]+):\?[^}]*\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR:?message}``: the variable's value, or compose refuses to start."""
    return REQUIRED.sub(lambda m: env[m.group(1)], value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def compose_redis():
    services = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]
    env = {"REDIS_PASSWORD": secrets.token_hex(24)}
    port = free_port()
    command = [interpolate(arg, env) for arg in services["redis"]["command"]]
    # where the container listens is the only change: a free port on loopback, nothing kept on disk
    server = subprocess.Popen([*command, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", "/tmp"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield services, env, port
    finally:
        server.terminate()
        server.wait(timeout=10)


def client(port: int, password: str | None = None) -> redis.Redis:
    return redis.Redis(port=port, password=password, retry=Retry(NoBackoff(), 0))  # a refusal is final


def test_redis_refuses_a_client_without_the_password(compose_redis):
    _, env, port = compose_redis
    with pytest.raises(redis.AuthenticationError):
        client(port).ping()
    with pytest.raises(redis.AuthenticationError):
        client(port, "airflow").ping()
    assert client(port, env["REDIS_PASSWORD"]).ping()


def test_the_broker_url_and_the_healthcheck_get_in_with_it(compose_redis):
    services, env, port = compose_redis
    for name in ("airflow-scheduler", "airflow-worker"):
        url = interpolate(services[name]["environment"]["AIRFLOW__CELERY__BROKER_URL"], env)
        with Connection(url.replace("@redis:6379/", f"@127.0.0.1:{port}/")) as broker:  # as Celery reads it
            broker.ensure_connection(max_retries=1)
            queue = broker.SimpleQueue("crm_sync_compose_check")
            queue.put({"task": "ping"})
            assert queue.get(timeout=5).payload == {"task": "ping"}
            queue.close()
    kind, check = services["redis"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    health_env = {**os.environ, **{k: interpolate(v, env) for k, v in services["redis"]["environment"].items()}}
    probe = check.replace("redis-cli", f"redis-cli -p {port}")
    assert subprocess.run(["sh", "-c", probe], env=health_env, timeout=30).returncode == 0
    health_env.pop("REDISCLI_AUTH")
    assert subprocess.run(["sh", "-c", probe], env=health_env, timeout=30).returncode != 0  # unhealthy without it
