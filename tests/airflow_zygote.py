"""One Airflow start-up shared by many `airflow dags test` runs of a test session.

A fresh `airflow dags test` interpreter spends about half its time importing Airflow, its CLI, the task
SDK, the in-process execution API, pandas and Great Expectations before the first task. The zygote is a
process started once per Airflow home and test process (with that home's environment: Airflow reads
AIRFLOW_HOME and its metadata database's URL at import) that imports all of that and nothing of this
project (and, before the first `dags test`, builds the in-process execution API it serves tasks with);
each run is a forked child that takes the run's own environment, runs Airflow's CLI with the
run's arguments and exits with its exit code, its output written to the files the caller names. The
project's own modules (crm_sync, the DAG files) are imported by the child, so whatever a test sets in the
environment for them is read as a fresh process would read it.

Protocol (one JSON object a line): the caller writes {"args", "env", "stdout", "stderr", "timeout"} to the
zygote's stdin and reads {"returncode"} (or {"timeout": true}) back from its stdout.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback

PRELOAD = (
    "airflow", "airflow.configuration", "airflow.settings", "airflow.__main__", "airflow.cli.cli_parser",
    "airflow.cli.commands.dag_command", "airflow.models.dag", "airflow.models.dagrun", "airflow.models.taskinstance",
    "airflow.dag_processing.dagbag", "airflow.sdk", "airflow.sdk.bases.hook", "airflow.sdk.execution_time.task_runner",
    "airflow.sdk.execution_time.supervisor", "airflow.api_fastapi.execution_api.app", "airflow.timetables.interval",
    "sqlalchemy", "alembic", "alembic.command", "fastapi", "starlette", "httpx", "cryptography.fernet", "pandas",
    "numpy", "great_expectations", "phonenumbers", "email_validator", "anyascii", "yaml", "jinja2", "tenacity",
    "pydantic",
)
OWN = ("crm_sync", "harness")  # imported by each run, never by the zygote...
PROVIDER_INFO = ("crm_sync", "crm_sync.provider")  # ...but for Airflow's provider list (constants, no environment)


def _preload() -> None:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional module of a version that has none: the child imports what it needs
            pass
    _check_no_own_modules()


def _check_no_own_modules() -> None:
    own = sorted(m for m in sys.modules if m.split(".")[0] in OWN and m not in PROVIDER_INFO)
    if own:
        raise RuntimeError(f"the zygote imported the project's own modules, which a run must import itself: {own}")


def _child(request: dict, replies: int) -> None:
    """In the forked child: become the run's process, run Airflow's CLI, exit with its code."""
    code = 1
    try:
        os.close(replies)  # the zygote's answers are not the run's to hold open
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[:0] = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
        from airflow import settings

        if getattr(settings, "engine", None) is not None:
            settings.engine.dispose(close=False)  # the zygote's pool (never used) is not this process's
        from airflow.__main__ import main

        sys.argv = ["airflow", *request["args"]]
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: BLE001 - the caller reads it in the run's stderr
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def _build_execution_api() -> None:
    """What every `dags test` run builds before its first task, 5 to 15 s: the in-process execution
    API's app and (on its first request) its versioned routes. Built once, before the first run is
    forked, for it and every later one; a zygote that only migrates never pays for it."""
    try:
        from airflow.sdk.execution_time.supervisor import in_process_api_server

        app = in_process_api_server().app  # cached; its transport (a thread) stays the run's to start
        if getattr(app, "_cadwyn_initialized", True) is False:
            app._cadwyn_initialize()  # what cadwyn does on the app's first request
    except Exception:  # noqa: BLE001 - an Airflow without these: each run builds its own, as before
        return
    _check_no_own_modules()


def _serve_one(request: dict, replies: int) -> dict:
    if request["args"][:2] == ["dags", "test"]:
        _build_execution_api()  # once: in_process_api_server is cached
    if threading.active_count() != 1:
        raise RuntimeError(f"the zygote has {threading.active_count()} threads: forking it would copy held locks")
    pid = os.fork()
    if pid == 0:
        _child(request, replies)
    deadline = time.monotonic() + request["timeout"]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"returncode": os.waitstatus_to_exitcode(status)}
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"timeout": True}
        time.sleep(0.05)


def main() -> None:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # what the imports print is not a reply
    _preload()
    replies.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        replies.write(json.dumps(_serve_one(json.loads(line), replies.fileno())) + "\n")


if __name__ == "__main__":
    main()
