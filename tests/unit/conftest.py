"""Unit tests run in this process alone: a test here that opens a socket or starts a process fails.

A test that needs a simulator, a database server, Airflow or a subprocess belongs in tests/integration
(or tests/contract, tests/e2e). The guard covers the test's setup (its fixtures) and its body.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest

FORBIDDEN = [(socket.socket, "connect"), (socket.socket, "connect_ex"), (socket.socket, "bind"),
             (subprocess.Popen, "_execute_child"), (os, "fork"), (os, "forkpty"), (os, "system"),
             (os, "posix_spawn"), (os, "posix_spawnp"), (os, "execv"), (os, "execve"),
             (psycopg2, "connect")]  # libpq opens its own sockets


def _forbid(name: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a unit test called {name}: a test that opens a socket or starts a process "
                             "belongs in tests/integration (or tests/contract, tests/e2e)")
    return refuse


@contextmanager
def _sealed() -> Iterator[None]:
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr in FORBIDDEN if hasattr(owner, attr)]
    for owner, attr, _ in saved:
        setattr(owner, attr, _forbid(f"{getattr(owner, '__name__', owner)}.{attr}"))
    try:
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _sealed():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _sealed():
        return (yield)
