"""How many HTTP connections a descriptor limit allows once the outbox's are set aside."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from notifier.api.server import connection_budget
from notifier.settings import HttpSettings


def test_a_generous_limit_keeps_the_configured_cap_and_backlog() -> None:
    budget = connection_budget(
        descriptors=1_048_576, reserve=152, max_connections=1000, backlog=128
    )
    assert (budget.connections, budget.backlog) == (1000, 128)


def test_a_small_limit_keeps_the_reserve_and_a_burst_of_accepts_free() -> None:
    budget = connection_budget(descriptors=256, reserve=96, max_connections=1000, backlog=128)
    assert budget.backlog == 40
    assert budget.connections == 80
    # The cap plus two accept bursts still leaves the outbox its reserve.
    assert budget.connections + 2 * budget.backlog + 96 <= 256


def test_a_limit_below_the_reserve_still_serves_a_few() -> None:
    budget = connection_budget(descriptors=100, reserve=152, max_connections=1000, backlog=128)
    assert (budget.connections, budget.backlog) == (8, 8)


def test_trusted_proxies_are_addresses_or_networks_written_as_uvicorn_compares_them() -> None:
    http = HttpSettings(trusted_proxies=["10.1.2.3/8", "::1", "192.0.2.7"])
    assert http.trusted_proxies == ["10.0.0.0/8", "::1", "192.0.2.7"]
    with pytest.raises(ValidationError, match="not an IP address or network"):
        HttpSettings(trusted_proxies=["proxy.example.org"])
    assert HttpSettings().trusted_proxies == []  # none believed unless configured
