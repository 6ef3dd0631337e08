"""What a visitor's browser gets beyond the words: validators on every page, HTML errors on
every public path (JSON stays for the API), the favicon, the stylesheet and the brand's
colours, link-preview tags without gated text, a status line with date and zone, finished
meetings under "Recent" without a form, reminder choices in words, and the zone search.

Over the real app (ASGI), on SQLite and PostgreSQL; the browser's view of the same pages
(layout, themes, axe-core) is tests/e2e/test_browser.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from notifier.public import theme, zones
from notifier.public.theme import contrast
from notifier.store import Store
from tests.helpers.public import TALKS
from tests.integration.conftest import Clock, api_client

AUTH = {"Authorization": "Bearer dev-token"}
PRIVATE = ("medical", "health", "new date will be announced")


@pytest.mark.parametrize("path", ["/", f"/meetings/{TALKS}", f"/meetings/{TALKS}?tz=Asia/Tokyo"])
async def test_pages_answer_conditional_gets(site: httpx.AsyncClient, path: str) -> None:
    first = await site.get(path)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    again = await site.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    # Another language is another page: its own validator.
    other = await site.get(path, headers={"Accept-Language": "ru"})
    assert other.headers["etag"] != etag
    # A change to the meeting makes the old validator stale.
    changed = await site.post(
        f"/v1/meetings/{TALKS}/status", json={"status": "cleared"}, headers=AUTH
    )
    assert changed.status_code == 202, changed.text
    assert (await site.get(path, headers={"If-None-Match": etag})).status_code == 200


async def test_errors_on_public_paths_are_pages_and_the_apis_stay_problems(
    site: httpx.AsyncClient,
) -> None:
    for path in ("/meetings/no-such-meeting", "/no/such/page", "/static/nothing.css"):
        answer = await site.get(path, headers={"Accept-Language": "ru"})
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html"), path
        assert 'lang="ru"' in answer.text
        assert "Страница не найдена" in answer.text
        assert "default-src 'none'" in answer.headers["content-security-policy"]
    wrong = await site.delete("/", headers={"Accept-Language": "en"})
    assert wrong.status_code == 405
    assert wrong.headers["content-type"].startswith("text/html")
    api = await site.get("/v1/meetings/no-such-meeting", headers=AUTH)
    assert api.status_code == 404
    assert api.headers["content-type"] == "application/problem+json"


async def test_the_favicon_the_stylesheets_and_the_accent(site: httpx.AsyncClient) -> None:
    ico = await site.get("/favicon.ico")
    assert ico.status_code == 200
    assert ico.content[:4] == b"\x00\x00\x01\x00"  # an ICO file's header
    svg = await site.get("/favicon.svg")
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    css = await site.get("/static/public.css")
    assert "prefers-color-scheme: dark" in css.text
    brand = await site.get("/static/brand.css")
    assert brand.status_code == 200
    assert "--accent:" in brand.text
    page = (await site.get("/")).text
    assert 'href="/static/brand.css' in page
    assert 'rel="icon"' in page
    assert "cdn" not in page.lower()


@pytest.mark.parametrize(
    "colour", ["#0b4f9c", "#ffff00", "#000000", "#ffffff", "#7f7f7f", "#e4002b"]
)
def test_every_accent_is_given_a_readable_shade_for_each_theme(colour: str) -> None:
    shades = theme.accent(colour)
    for surface in theme.LIGHT_SURFACES:  # links on the light page
        assert contrast(shades.light, surface) >= 4.5
    for surface in theme.DARK_SURFACES:  # links on the dark page
        assert contrast(shades.dark, surface) >= 4.5
    assert contrast(shades.light_text, shades.light) >= 4.5  # a button's text
    assert contrast(shades.dark_text, shades.dark) >= 4.5


async def test_a_meeting_page_has_link_preview_tags_without_gated_text(
    site: httpx.AsyncClient,
) -> None:
    page = (await site.get(f"/meetings/{TALKS}?lang=en")).text
    tags = dict(
        re.findall(r'<meta (?:property|name)="((?:og|twitter):[a-z:_]+)" content="([^"]*)"', page)
    )
    assert tags["og:title"].startswith("Talks between the presidents")
    assert tags["og:description"] == "Postponed · 19:00 MSK, Monday 2 March 2026"
    assert tags["twitter:card"] == "summary"
    assert tags["og:url"].endswith(f"/meetings/{TALKS}")
    for value in tags.values():
        for word in PRIVATE:
            assert word not in value.lower()


async def test_a_rescheduled_meeting_says_where_it_went_with_date_and_zone(
    site: httpx.AsyncClient,
) -> None:
    moved = await site.post(
        f"/v1/meetings/{TALKS}/status",
        json={
            "status": "rescheduled",
            "starts_at": "2026-03-05T18:00:00+00:00",
            "reason": "evening",
        },
        headers=AUTH,
    )
    assert moved.status_code == 202, moved.text
    en = (await site.get(f"/meetings/{TALKS}?lang=en")).text
    assert "Rescheduled to 21:00 MSK, Thursday 5 March" in en
    ru = (await site.get(f"/meetings/{TALKS}?lang=ru")).text
    assert "Новое время: 21:00 МСК, четверг, 5 марта" in ru
    # In the viewer's zone, with that zone's short name.
    tokyo = (await site.get(f"/meetings/{TALKS}?lang=en&tz=Asia/Tokyo")).text
    assert "Rescheduled to 03:00 JST, Friday 6 March" in tokyo
    # The timeline keeps what each change said when it was made.
    history = tokyo[tokyo.index('class="timeline"') :]
    assert "starts 03:00 JST, Friday 6 March 2026" in history
    assert "starts 01:00 JST, Tuesday 3 March 2026" in history  # what "scheduled" announced


async def test_a_clearance_names_what_it_lifted_to_the_public_only_when_public(
    site: httpx.AsyncClient,
) -> None:
    # The seed's pending condition is the participants' alone: the public page and feed
    # say a clearance happened and nothing of what it lifted.
    cleared = await site.post(
        f"/v1/meetings/{TALKS}/status", json={"status": "cleared"}, headers=AUTH
    )
    assert cleared.status_code == 202, cleared.text
    assert cleared.json()["change"]["cleared"] == {"participants": ["health clearance"]}
    for path in (f"/meetings/{TALKS}?lang=en", f"/meetings/{TALKS}/feed.atom?lang=en"):
        text = (await site.get(path)).text
        assert "condition met" not in text.lower()
        assert "health" not in text
    # A condition the public may read is named when it is lifted, in both languages.
    for status, conditions in (("postponed", ["visa for the delegation"]), ("cleared", None)):
        body: dict[str, object] = {"status": status, "force": True}
        if conditions is not None:
            body["conditions"] = conditions
        answer = await site.post(f"/v1/meetings/{TALKS}/status", json=body, headers=AUTH)
        assert answer.status_code == 202, answer.text
    en = (await site.get(f"/meetings/{TALKS}?lang=en")).text
    assert "condition met: visa for the delegation" in en[en.index('class="timeline"') :]
    ru = (await site.get(f"/meetings/{TALKS}?lang=ru")).text
    assert "выполнено условие: visa for the delegation" in ru
    feed = (await site.get(f"/meetings/{TALKS}/feed.atom?lang=en")).text
    assert "Condition met: visa for the delegation." in feed


async def test_a_cancelled_meeting_is_under_recent_without_a_subscribe_form(
    site: httpx.AsyncClient,
) -> None:
    before = (await site.get("/?lang=en")).text
    assert before.index("Talks between") < before.index("Recent and called off")
    assert 'action="/subscribe"' in (await site.get(f"/meetings/{TALKS}")).text
    cancelled = await site.post(
        f"/v1/meetings/{TALKS}/status", json={"status": "cancelled"}, headers=AUTH
    )
    assert cancelled.status_code == 202, cancelled.text
    index = (await site.get("/?lang=en")).text
    assert index.index("Recent and called off") < index.index("Talks between")
    page = (await site.get(f"/meetings/{TALKS}?lang=en")).text
    assert 'action="/subscribe"' not in page
    assert "This meeting has been cancelled" in page
    assert "badge-cancelled" in page


async def test_reminder_choices_are_words_in_both_languages(site: httpx.AsyncClient) -> None:
    en = (await site.get(f"/meetings/{TALKS}?lang=en")).text
    for words in ("1 day before", "1 hour before", "15 minutes before"):
        assert words in en
    ru = (await site.get(f"/meetings/{TALKS}?lang=ru")).text
    for words in ("за день", "за час", "за 15 минут"):
        assert words in ru
    assert ">1d<" not in en
    assert ">1h<" not in en


async def test_a_typed_zone_is_read_as_a_city_a_country_or_a_name(
    site: httpx.AsyncClient,
) -> None:
    for typed in ("Tokyo", "Токио", "Japan (Tokyo)", "asia/tokyo", "Asia/Tokyo"):
        page = (await site.get(f"/meetings/{TALKS}", params={"tz": typed, "lang": "en"})).text
        assert re.search(r'id="viewer-time">[^<]*01:00', page), typed
    nonsense = (await site.get(f"/meetings/{TALKS}", params={"tz": "Atlantis"})).text
    assert 'id="viewer-time"' not in nonsense


def test_the_zone_list_holds_current_names_only_labelled_in_each_language() -> None:
    names = [z.name for z in zones.choices("en")]
    assert names[0] == "UTC"
    assert "Europe/Kyiv" in names
    assert "Asia/Kathmandu" in names
    for old in ("Europe/Kiev", "Asia/Katmandu", "US/East-Indiana", "Etc/GMT+3"):
        assert old not in names
    assert len(names) == len(set(names))
    oslo = next(z for z in zones.choices("ru") if z.name == "Europe/Oslo")
    assert oslo.shown == "Европа · Норвегия (Осло)"
    assert zones.find("Europe/Kiev") == "Europe/Kiev"  # an old name still works when typed
    assert zones.find("Oslo") == "Europe/Oslo"
    assert zones.find("") is None
    assert zones.find("x" * 5000) is None


async def test_branding_comes_from_the_config_per_language(
    store: Store, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"/>')
    public = {
        "enabled": True,
        "title": {"en": "Talks status", "ru": "Статус переговоров"},
        "organisation": {"en": "Protocol office", "ru": "Протокольная служба"},
        "logo": {"en": str(logo)},
        "accent": "#e4002b",
    }
    async with api_client(store, clock, database_url=database_url, public=public) as client:
        en = (await client.get("/?lang=en")).text
        ru = (await client.get("/?lang=ru")).text
        assert "Talks status" in en
        assert "Protocol office" in en
        assert "Статус переговоров" in ru
        assert "Протокольная служба" in ru
        assert 'src="/brand/logo?lang=ru"' in ru  # English's logo where Russian has none
        served = await client.get("/brand/logo?lang=ru")
        assert served.status_code == 200
        assert served.headers["content-type"].startswith("image/svg+xml")
        assert served.content == logo.read_bytes()
        # The accent, darkened just enough to read on the light page.
        assert theme.accent("#e4002b").light in (await client.get("/static/brand.css")).text
        feed = (await client.get("/feed.atom")).text
        assert "<name>Protocol office</name>" in feed
