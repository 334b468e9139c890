"""Shared fixtures: real simulators on localhost sockets, real warehouses, a real Airflow home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from harness.demo_data import LOCATION_ID, DemoData, build
from harness.simulators import generic, ghl, gist, gymdesk, gymflow, mygadgetrepairs
from harness.simulators.base import ServerThread, SimState

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("CRM_SYNC_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
GHL_TOKEN, GYMDESK_KEY = "pit-test-token", "gymdesk-test-key"
APP_KEY, CLIENT_ID, CLIENT_SECRET = "app-test-key", "test-client", "test-client-secret"
FERNET_KEY = Fernet.generate_key().decode()  # every Airflow run of this test process: one key, as in a deployment
API_BASE_PATH = {"mygadgetrepairs": "/v1"}  # part of the app's documented base URL
APP_SIMULATORS = {"gymdesk": gymdesk.create_app, "gymflow": gymflow.create_app,
                  "mygadgetrepairs": mygadgetrepairs.create_app, "gist": gist.create_app}


@pytest.fixture
def fernet_key(monkeypatch) -> str:
    """A fresh Fernet key as this process's [core] fernet_key (Airflow caches its Fernet: cleared around)."""
    from airflow.sdk.crypto import get_fernet

    key = Fernet.generate_key().decode()
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", key)
    get_fernet.cache_clear()
    yield key
    get_fernet.cache_clear()


@pytest.fixture
def demo_data() -> DemoData:
    return build(datetime.now(UTC).date())


class Sim:
    """A running simulator: its URL and an admin client for seeding and reading it."""

    def __init__(self, url: str):
        self.url = url
        self.admin = httpx.Client(base_url=url + "/_sim", timeout=10)

    def records(self, collection: str) -> list[dict]:
        return self.admin.get(f"/records/{collection}").json()

    def seed(self, collection: str, rows: list[dict]) -> None:
        self.admin.post("/seed", json={collection: rows}).raise_for_status()

    def calls(self) -> dict[str, int]:
        return self.admin.get("/calls").json()

    def reset_calls(self) -> None:
        self.admin.post("/calls/reset").raise_for_status()


@pytest.fixture
def ghl_sim() -> Iterator[Sim]:
    grant = {"location_id": LOCATION_ID, "scopes": list(ghl.SCOPES)}
    with ServerThread(ghl.create_app(ghl.GHLSimulator({GHL_TOKEN: grant}, SimState()))) as server:
        yield Sim(server.url)


@pytest.fixture
def gymdesk_sim() -> Iterator[Sim]:
    with ServerThread(gymdesk.create_app(GYMDESK_KEY, SimState())) as server:
        yield Sim(server.url)


@pytest.fixture
def app_sim(request) -> Iterator[Sim]:
    """The simulator of the app named by the test's parameter (``@pytest.mark.parametrize("app_sim",
    ["gymflow"], indirect=True)``), with its key APP_KEY (or, for generic, the OAuth client)."""
    name = request.param
    app = (generic.create_app(CLIENT_ID, CLIENT_SECRET, SimState()) if name == "generic"
           else APP_SIMULATORS[name](APP_KEY, SimState()))
    with ServerThread(app) as server:
        sim = Sim(server.url)
        sim.name = name
        yield sim


def app_connection_env(profile_name: str, ghl_url: str, app_url: str) -> dict[str, str]:
    """Airflow connections for GHL and the profile's app, as environment variables."""
    from crm_sync.profile import profile_by_name

    profile = profile_by_name(profile_name)
    conn: dict = {"conn_type": "crm_sync_app", "host": app_url + API_BASE_PATH.get(profile_name, "")}
    if profile.app.auth.type == "oauth_client_credentials":
        conn["extra"] = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    else:
        conn["password"] = APP_KEY
    return {"AIRFLOW_CONN_GHL_DEFAULT": json.dumps({"conn_type": "ghl", "host": ghl_url, "password": GHL_TOKEN,
                                                    "extra": {"location_id": LOCATION_ID}}),
            f"AIRFLOW_CONN_{profile.app.conn_id.upper()}": json.dumps(conn)}


def _postgres_available() -> bool:
    try:
        with sa.create_engine(PG_ADMIN_URL).connect():
            return True
    except sa.exc.OperationalError:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request, tmp_path) -> Iterator[str]:
    """The embedded SQLite default, and a throwaway database on the real PostgreSQL server."""
    with warehouse_database(request.param, tmp_path) as url:
        yield url


@contextmanager
def warehouse_database(kind: str, folder: Path) -> Iterator[str]:
    """A new, empty warehouse database: SQLite in ``folder``, or one on the PostgreSQL server, dropped
    afterwards (also for a module's fixture that seeds one warehouse its tests only read)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'warehouse.db'}"
        return
    if not _postgres_available():
        pytest.fail(f"PostgreSQL is required for the warehouse tests and is not reachable at {PG_ADMIN_URL}")
    name = f"crm_sync_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_warehouse(tmp_path, monkeypatch) -> Iterator[sa.Engine]:
    """A migrated SQLite warehouse that the code under test finds on its own (WAREHOUSE_URL)."""
    from crm_sync.warehouse.db import create, engine, migrate

    url = f"sqlite:///{tmp_path / 'w.db'}"
    monkeypatch.setenv("WAREHOUSE_URL", url)
    engine.cache_clear()
    eng = create(url)
    migrate(eng)
    yield eng
    engine.cache_clear()
    eng.dispose()


@pytest.fixture
def gymdesk_warehouse(tmp_path, monkeypatch, ghl_sim, gymdesk_sim) -> Iterator[sa.Engine]:
    """A SQLite warehouse and the GHL and Gymdesk simulators' connections, found by the steps' own
    code as a DAG run finds them (WAREHOUSE_URL, AIRFLOW_CONN_*): the engine those steps use."""
    from crm_sync.warehouse.db import engine

    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    for name, value in connection_env(ghl_sim.url, gymdesk_sim.url).items():
        monkeypatch.setenv(name, value)
    engine.cache_clear()
    yield engine()
    engine().dispose()
    engine.cache_clear()


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> Path:
    """An Airflow home with its metadata database migrated once per test session."""
    home = tmp_path_factory.mktemp("airflow_home")
    migrated = airflow(home, {}, "db", "migrate", timeout=300)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    return home


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "WAREHOUSE_URL"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__FERNET_KEY": FERNET_KEY,  # OAuth tokens are stored only encrypted
        "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    env.update(extra)
    return env


def connection_env(ghl_url: str, gymdesk_url: str) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_GHL_DEFAULT": json.dumps({"conn_type": "ghl", "host": ghl_url, "password": GHL_TOKEN,
                                                "extra": {"location_id": LOCATION_ID}}),
        "AIRFLOW_CONN_GYMDESK_DEFAULT": json.dumps({"conn_type": "crm_sync_app", "host": gymdesk_url,
                                                    "password": GYMDESK_KEY}),
    }


def warehouse_env(url: str) -> dict[str, str]:
    """How a DAG run finds the warehouse at ``url``: PostgreSQL in the production shape (the Airflow
    connection warehouse_default), SQLite through WAREHOUSE_URL."""
    if not url.startswith("postgresql"):
        return {"WAREHOUSE_URL": url}
    parts = sa.engine.make_url(url)
    return {"AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps({
        "conn_type": "postgres", "host": parts.host, "port": parts.port, "login": parts.username,
        "schema": parts.database})}


class Zygote:
    """An Airflow start-up shared by the `airflow dags test` runs of one Airflow home in this test process
    (tests/airflow_zygote.py): each run is a forked child of it with the run's environment."""

    started: dict[Path, Zygote] = {}

    def __init__(self, home: Path):
        self.log = tempfile.NamedTemporaryFile(prefix="airflow-zygote-", suffix=".log", delete=False)
        self.process = subprocess.Popen([sys.executable, "-m", "tests.airflow_zygote"], cwd=ROOT, env=airflow_env(home),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.lock = threading.Lock()
        if not self.process.stdout.readline():
            raise RuntimeError(f"the Airflow zygote did not start:\n{Path(self.log.name).read_text()[-5000:]}")

    @classmethod
    def of(cls, home: Path) -> Zygote:
        if home not in cls.started or cls.started[home].process.poll() is not None:
            cls.started[home] = cls(home)
        return cls.started[home]

    def run(self, args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        with self.lock, tempfile.TemporaryDirectory(prefix="airflow-run-") as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            request = {"args": args, "env": env, "stdout": str(out), "stderr": str(err), "timeout": timeout}
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            reply = self.process.stdout.readline()
            if not reply:
                raise RuntimeError(f"the Airflow zygote died:\n{Path(self.log.name).read_text()[-5000:]}")
            answer = json.loads(reply)
            stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
        if answer.get("timeout"):
            raise subprocess.TimeoutExpired(["airflow", *args], timeout, stdout, stderr)
        return subprocess.CompletedProcess(["airflow", *args], answer["returncode"], stdout, stderr)

    @classmethod
    def stop_all(cls) -> None:
        for zygote in cls.started.values():
            zygote.process.stdin.close()
            zygote.process.wait(timeout=30)
            Path(zygote.log.name).unlink(missing_ok=True)
        cls.started.clear()


def pytest_sessionfinish(session, exitstatus):
    Zygote.stop_all()


def airflow(home: Path, env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`airflow <args>` on the home with the run's environment: a child of the home's zygote (set
    CRM_SYNC_TEST_ZYGOTE=0 for a fresh interpreter per run, as a user's shell starts it)."""
    if os.environ.get("CRM_SYNC_TEST_ZYGOTE", "1") == "0":
        return subprocess.run([sys.executable, "-m", "airflow", *args], env=airflow_env(home, **env),
                              capture_output=True, text=True, timeout=timeout)
    return Zygote.of(home).run(list(args), airflow_env(home, **env), timeout)


def run_dag(home: Path, dag_id: str, env: dict[str, str], *args: str, succeed: bool = True
            ) -> subprocess.CompletedProcess:
    """Run one DAG run through Airflow (`airflow dags test`); fail the test with its log if the run's
    outcome is not the expected one."""
    result = airflow(home, env, "dags", "test", dag_id, *args)
    succeeded = result.returncode == 0 and "state=success" in result.stdout + result.stderr
    if succeeded != succeed:
        output = result.stdout + result.stderr
        first_error = output.find("Traceback (most recent call last)")
        tail = (output[first_error:first_error + 12000] + "\n...\n" if first_error >= 0 else "") + output[-3000:]
        pytest.fail(f"airflow dags test {dag_id}: expected the run to {'succeed' if succeed else 'fail'} "
                    f"(exit {result.returncode}):\n{tail}")
    return result


def processes(environment: str, in_arguments: str | None = None) -> dict[int, str]:
    """Running processes (pid: command line) with an environment variable set to a value that starts
    as ``environment`` says ("NAME=value"), or with ``in_arguments`` in their command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            variables = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if any(v.startswith(environment.encode()) for v in variables) or (in_arguments and in_arguments in cmdline):
            found[int(entry.name)] = cmdline
    return found


KINDS = ("unit", "integration", "contract", "e2e")  # the folders under tests/, each a marker of that name


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(config, items):
    """Every test carries its folder's kind as a marker, so `-m unit` or `-m "not e2e"` select by kind."""
    tests = ROOT / "tests"
    for item in items:
        kind = item.path.relative_to(tests).parts[0] if item.path.is_relative_to(tests) else None
        if kind in KINDS:
            item.add_marker(kind)


# End-to-end tests whose harness keeps its Airflow homes, simulators, ports and processes under the
# test's tmp_path and uses no Celery (the chaos trials, the webhook lab, the profile demos with --home):
# either worker may run them too.
OWN_HOMES = ("tests/e2e/test_chaos.py", "tests/e2e/test_webhooks.py", "tests/e2e/test_demo_profiles.py")


# End-to-end tests that use neither .demo/ nor the Celery broker (their own api-server, warehouse,
# ports and screenshot folder): either worker may run them beside the others.
ON_THEIR_OWN = ("tests/e2e/test_console_csrf.py", "tests/e2e/test_console_states.py",
                "tests/e2e/test_console_people.py")


def pytest_xdist_make_scheduler(config, log):
    """``make test-slow`` (``--dist loadscope``): the end-to-end tests share what a user's machine has once,
    the repository's .demo/ folder and one Celery broker, so they are one unit of work that one worker runs
    test after test; every other test is a unit of its own, for either worker."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class EndToEndTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            shared = nodeid.startswith("tests/e2e/") and not nodeid.startswith(ON_THEIR_OWN + OWN_HOMES)
            return "tests/e2e" if shared else nodeid

        def _reschedule(self, node) -> None:
            # The chain's worker takes another unit only when the chain's last test starts: one queued
            # behind the rest of the chain would wait there while the other worker runs out of work.
            if list(self.assigned_work.get(node, {}).get("tests/e2e", {}).values()).count(False) > 1:
                return
            super()._reschedule(node)

    return EndToEndTogether(config, log)
