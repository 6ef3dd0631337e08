"""Return-path tokens (VERP): short, safe in a local part, bound to a delivery and the
address it went to, signed with the installation's key."""

from __future__ import annotations

import re

from notifier.domain.outbox import delivery_id
from notifier.tokens import (
    bounce_token,
    bounce_token_delivery,
    bounce_token_valid,
    return_path,
    token_of_return_path,
)

KEY = "k" * 43
ID = delivery_id("installation", "talks", 3, "meeting.cleared", "press", "email")


def test_a_token_names_its_delivery_in_42_safe_characters() -> None:
    token = bounce_token(KEY, ID, "Press@Example.org")
    assert token is not None
    assert re.fullmatch(r"[a-z2-7]{42}", token)
    assert bounce_token_delivery(token) == ID
    address = return_path("bounces@example.org", token)
    assert len(address.partition("@")[0]) == 50 <= 64
    assert token_of_return_path("bounces@example.org", address) == token


def test_a_token_holds_for_its_address_only_and_its_key_only() -> None:
    token = bounce_token(KEY, ID, "press@example.org")
    assert token is not None
    assert bounce_token_valid(KEY, token, " PRESS@example.org ")
    assert bounce_token_valid(KEY, token.upper(), "press@example.org"), "a relay folded case"
    assert not bounce_token_valid(KEY, token, "other@example.org")
    assert not bounce_token_valid("another key", token, "press@example.org")
    other = bounce_token(KEY, delivery_id("x"), "press@example.org")
    assert other is not None
    assert not bounce_token_valid(KEY, token[:26] + other[26:], "press@example.org")
    flipped = token[:-1] + ("a" if token[-1] != "a" else "b")
    assert not bounce_token_valid(KEY, flipped, "press@example.org")


def test_only_return_paths_of_the_bounce_address_carry_a_token() -> None:
    token = bounce_token(KEY, ID, "press@example.org")
    assert token is not None
    for recipient in (
        "bounces@example.org",
        f"bounces+{token}@example.net",
        f"other+{token}@example.org",
        "bounces+short@example.org",
        f"bounces+{token}x@example.org",
        f"bounces+{token[:-1]}!@example.org",
        "",
    ):
        assert token_of_return_path("bounces@example.org", recipient) is None, recipient
    assert token_of_return_path("bounces@example.org", f"<BOUNCES+{token.upper()}@EXAMPLE.ORG>")


def test_ids_of_another_shape_get_no_token() -> None:
    assert bounce_token(KEY, "msg_preview", "a@example.org") is None
    assert bounce_token(KEY, "msg_" + "z" * 32, "a@example.org") is None
    assert bounce_token_delivery("not a token") is None
