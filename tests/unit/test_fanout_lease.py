"""A killed replica's unfinished fan-out is taken over after `delivery.fanout_lease`
(15 s, renewed by every chunk), not after a whole delivery lease (2 min)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from notifier.settings import ConfigError, load_settings
from notifier.supervisor import Expander

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "notifier.toml"


def test_the_fanout_lease_is_short_by_default_and_apart_from_the_delivery_lease() -> None:
    settings = load_settings(SHIPPED)
    assert settings.delivery.fanout_lease == timedelta(seconds=15)
    assert settings.delivery.lease == timedelta(minutes=2)
    expander = Expander(None, clock=lambda: None, on_chunk=lambda: None)
    assert expander.lease == timedelta(seconds=15)


@pytest.mark.parametrize("value", ["0s", "11m"])
def test_a_fanout_lease_out_of_bounds_is_refused_naming_it(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFIER_DELIVERY__FANOUT_LEASE", value)
    with pytest.raises(ConfigError, match="fanout_lease"):
        load_settings(SHIPPED)
