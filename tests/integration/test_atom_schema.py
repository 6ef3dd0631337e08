"""Every Atom document the site serves is valid RFC 4287, by the RFC's own schema.

The schema is appendix B's RELAX NG compact syntax (tests/data/atom.rnc), converted here
by rnc2rng and loaded by lxml, so what is checked is the RFC's text, not a copy of it
kept by hand. Its two Schematron rules (an author for every entry; a link or content in
every entry) are annotations RELAX NG does not run: they are checked with XPath below.
Run on SQLite and PostgreSQL, in both languages, after each kind of status change.
"""

from __future__ import annotations

import functools
from pathlib import Path

import httpx
import pytest
import rnc2rng
from lxml import etree

from tests.helpers.public import TALKS

AUTH = {"Authorization": "Bearer dev-token"}
ATOM = "http://www.w3.org/2005/Atom"
NS = {"atom": ATOM}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "atom.rnc"

#: The feeds the site serves, and how a reader asks each language.
FEEDS = ("/feed.atom", f"/meetings/{TALKS}/feed.atom")
ASKED = (
    ("en", "?lang=en", {}),
    ("ru", "?lang=ru", {}),
    ("en", "", {"Accept-Language": "en-GB, en;q=0.8"}),
    ("ru", "", {"Accept-Language": "ru-RU, ru;q=0.9, en;q=0.5"}),
)


@functools.cache
def atom_schema() -> etree.RelaxNG:
    """RFC 4287's schema as lxml loads it, converted from the compact syntax now."""
    converted = rnc2rng.dumps(rnc2rng.load(str(SCHEMA)))
    # rnc2rng declares every namespace of the .rnc on the grammar, `local = ""` too, as
    # xmlns:local="": Namespaces in XML 1.0 forbids a prefix bound to no namespace, so
    # lxml refuses the document. The converted grammar never uses the prefix (it writes
    # `local:*` as <nsName ns=""/>): the declaration alone is dropped.
    converted = converted.replace('xmlns:local=""', "")
    return etree.RelaxNG(etree.fromstring(converted.encode("utf-8")))


def assert_valid_atom(body: bytes, lang: str, where: str) -> etree._Element:
    """`body` is an Atom feed document RFC 4287 accepts, in `lang`; its root element."""
    root = etree.fromstring(body)
    schema = atom_schema()
    if not schema.validate(root):
        log = "\n".join(str(error) for error in schema.error_log)
        pytest.fail(f"{where}: not valid RFC 4287:\n{log}\n{body.decode()}")
    assert root.tag == f"{{{ATOM}}}feed", where
    assert root.get(XML_LANG) == lang, where
    # Appendix B's Schematron, which RELAX NG leaves aside: the feed names its author
    # (so no entry needs one), and each entry links to its page or carries content.
    assert root.xpath("atom:author/atom:name/text()", namespaces=NS), where
    entries = root.xpath("atom:entry", namespaces=NS)
    for entry in entries:
        for child in ("id", "updated", "title"):
            assert entry.xpath(f"string(atom:{child})", namespaces=NS).strip(), (where, child)
        assert entry.xpath(
            "atom:link[@rel='alternate'] or atom:link[not(@rel)] or atom:content",
            namespaces=NS,
        ), where
    return root


def test_the_rfc_schema_converts_loads_and_refuses_what_the_rfc_refuses() -> None:
    schema = atom_schema()
    feed = (
        f'<feed xmlns="{ATOM}" xml:lang="en"><id>tag:example.org,2026:x</id>'
        "<title>T</title><updated>2026-02-25T09:00:00Z</updated>"
        "<author><name>A</name></author>{}</feed>"
    )
    assert schema.validate(etree.fromstring(feed.format("")))
    # Not a vacuous schema: a feed without its id, a date that is not RFC 3339, a bad
    # language tag and an entry without a title are each refused.
    broken = (
        feed.format("").replace("<id>tag:example.org,2026:x</id>", ""),
        feed.format("").replace("2026-02-25T09:00:00Z", "25 Feb 2026"),
        feed.format("").replace('xml:lang="en"', 'xml:lang="en_GB"'),
        feed.format(
            "<entry><id>tag:example.org,2026:e</id><updated>2026-02-25T09:00:00Z</updated></entry>"
        ),
    )
    for document in broken:
        assert not schema.validate(etree.fromstring(document)), document


async def assert_every_feed_valid(site: httpx.AsyncClient, step: str) -> int:
    """Every feed in every way of asking its language is valid; the entries seen."""
    seen = 0
    for path in FEEDS:
        for lang, query, headers in ASKED:
            answer = await site.get(path + query, headers=headers)
            where = f"{step}: GET {path}{query} {headers}"
            assert answer.status_code == 200, where
            assert answer.headers["content-type"].startswith("application/atom+xml"), where
            root = assert_valid_atom(answer.content, lang, where)
            seen += len(root.xpath("atom:entry", namespaces=NS))
    return seen


async def test_every_feed_is_valid_atom_in_both_languages_after_each_change(
    site: httpx.AsyncClient,
) -> None:
    seen = await assert_every_feed_valid(site, "seed")
    changes = (
        {"status": "postponed", "reason": "venue not confirmed"},
        {"status": "cleared", "reason": "venue confirmed"},
        {
            "status": "rescheduled",
            "reason": "moved to the evening",
            "starts_at": "2026-03-04T17:30:00+00:00",
        },
        {"status": "cancelled", "reason": "talks called off"},
    )
    for change in changes:
        pushed = await site.post(f"/v1/meetings/{TALKS}/status", json=change, headers=AUTH)
        assert pushed.status_code == 202, pushed.text
        now_seen = await assert_every_feed_valid(site, f"after {change['status']}")
        assert now_seen > seen, change  # the change is in the feeds checked
        seen = now_seen
