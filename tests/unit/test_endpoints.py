"""The subscriber endpoint policy is written once (`notifier.endpoints`) and judged two ways:
without the network when the config file is read, with names resolved when the API saves.
Whatever the first refuses, the second refuses too, for the same field; what both accept
is the same. (Only IP literals here: nothing is resolved, nothing leaves the machine.)"""

from __future__ import annotations

import ast
from ipaddress import ip_network
from pathlib import Path

import pytest

from notifier.channels.chat import DEFAULT_SCHEMES
from notifier.endpoints import EndpointPolicy, literal_refusals, refusals

POLICY = EndpointPolicy(allow=(), schemes=DEFAULT_SCHEMES)
ALLOW_LAB = EndpointPolicy(allow=(ip_network("10.9.0.0/16"),), schemes=DEFAULT_SCHEMES)

REFUSED = [
    ("http://127.0.0.1:9000/hook", [], ("webhook", "url")),
    ("http://10.0.0.7/hook", [], ("webhook", "url")),
    ("http://169.254.169.254/latest/meta-data", [], ("webhook", "url")),
    ("http://[::1]/hook", [], ("webhook", "url")),
    ("http://localhost/hook", [], ("webhook", "url")),
    (None, ["json://127.0.0.1:8000/path"], ("notify", 0)),
    (None, ["tgram://123456:abcdef/42", "ntfys://10.1.2.3/topic"], ("notify", 1)),
    (None, ["mailto://user:pass@example.com"], ("notify", 0)),  # not an allowed scheme
    (None, ["not a url"], ("notify", 0)),
]

ACCEPTED = [
    ("https://93.184.216.34/hook", []),
    (None, ["json://93.184.216.34/path", "tgram://123456:abcdef/42"]),
]


@pytest.mark.parametrize(("webhook", "notify", "loc"), REFUSED)
async def test_what_the_file_refuses_the_api_refuses_for_the_same_field(
    webhook: str | None, notify: list[str], loc: tuple[str | int, ...]
) -> None:
    literal = literal_refusals(webhook, notify, POLICY)
    resolved = await refusals(webhook, notify, POLICY)
    assert [r.loc for r in literal] == [loc]
    assert [r.loc for r in resolved] == [loc]
    # Each says which field, and never repeats an Apprise URL (it holds a token).
    assert resolved[0].message.startswith(f"{resolved[0].field}: ")
    for url in notify:
        assert url not in literal[0].message
        assert url not in resolved[0].message


@pytest.mark.parametrize(("webhook", "notify"), ACCEPTED)
async def test_what_both_accept_is_the_same(webhook: str | None, notify: list[str]) -> None:
    assert literal_refusals(webhook, notify, POLICY) == []
    assert await refusals(webhook, notify, POLICY) == []


async def test_the_allow_list_opens_the_same_networks_to_both() -> None:
    for webhook, notify in (("http://10.9.4.4/hook", []), (None, ["json://10.9.4.4/x"])):
        assert literal_refusals(webhook, notify, ALLOW_LAB) == []
        assert await refusals(webhook, notify, ALLOW_LAB) == []
        assert literal_refusals(webhook, notify, POLICY) != []


def test_the_policy_is_judged_in_one_module() -> None:
    # The checks the policy is made of are called from notifier/endpoints.py alone (the
    # sending side checks again what it connects to, with `egress.allowed_addresses`).
    package = Path(__file__).resolve().parents[2] / "notifier"
    judges = {"check_url", "url_problem", "host_problem"}
    callers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in judges:
                    callers.add(path.relative_to(package).as_posix())
    assert callers == {"endpoints.py"}
