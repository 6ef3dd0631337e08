"""The storage suites together are the port's contract suite: when the whole integration
suite runs, every method of `notifier.store.port.TransactionPort` has run on SQLite, and on
PostgreSQL when it is configured. (Named to run last; recorded by conftest.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.conftest import PORT_CALLS, port_methods


def test_every_port_method_ran_on_every_backend(request: pytest.FixtureRequest) -> None:
    ran = {item.module.__name__ for item in request.session.items if item.module}
    here = {f"tests.integration.{p.stem}" for p in Path(__file__).parent.glob("test_*.py")}
    if not here <= ran or request.config.getoption("keyword"):
        pytest.skip("checked when the whole integration suite runs")
    backends = ["sqlite"] + (["postgresql"] if os.environ.get("NOTIFIER_TEST_POSTGRES_URL") else [])
    for backend in backends:
        missing = sorted(port_methods() - PORT_CALLS.get(backend, set()))
        assert missing == [], f"never run on {backend}: {missing}"
