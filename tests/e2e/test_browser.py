"""The public face in a real browser: Playwright driving Debian's Chromium against the real
daemon (`notifier run` on the shipped config, public pages on), a real aiosmtpd server.

A reader in New York opens the meeting page and sees the time there, subscribes, finds the
confirmation in the mail server, confirms, receives the next status change, changes what
they hear on the manage page, and leaves; axe-core finds no serious violation on the way.
Then every page a reader can reach (the list, a meeting, the confirm, manage and
unsubscribe pages, an answer, a 404) is toured in English and Russian, light and dark: none
scrolls sideways at 320 or 390 px (and 1280 when writing screenshots), and axe-core finds no
violation of any impact.
Without JavaScript the zone picker still works. `/docs` lists the operations with every
request off this machine refused. Screenshots go to docs/screenshots/ when
NOTIFIER_SCREENSHOTS is set (that is how the README's were made).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, Notifier
from tests.integration.peers import SmtpServer, free_port

playwright_api = pytest.importorskip("playwright.sync_api")
ONE_BACKEND = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
TALKS = "moscow-tskhinvali-talks"
SHOTS = ROOT / "docs" / "screenshots"


def chromium() -> str:
    """Debian's Chromium (.ci/run installs it); no browser is downloaded."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's package)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


@pytest.fixture
def site(notifier: Notifier) -> Iterator[tuple[str, SmtpServer, Notifier]]:
    smtp = SmtpServer().start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    notifier.env.update(
        NOTIFIER_LISTEN=f"127.0.0.1:{port}",
        NOTIFIER_PUBLIC_URL=base,
        NOTIFIER_PUBLIC__ENABLED="true",
        NOTIFIER_SMTP__PORT=str(smtp.port),
    )
    assert notifier("db", "upgrade").code == 0
    daemon = notifier.spawn("run")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the daemon did not answer")
        yield base, smtp, notifier
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        smtp.stop()


def mails_to(smtp: SmtpServer, address: str, *, at_least: int = 1, within: float = 20) -> list[Any]:
    deadline = time.monotonic() + within
    while True:
        found = [
            message_from_bytes(raw, policy=policy.default)
            for rcpts, raw in list(smtp.box.raw)
            if rcpts == [address]
        ]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def violations(
    page: Any, impacts: tuple[str, ...] = ("minor", "moderate", "serious", "critical")
) -> list[str]:
    """axe-core's violations on the page of the given impacts, by rule id and where."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v.get('impact')}): {v['help']} at "
        + ", ".join(str(node.get("target")) for node in v.get("nodes", [])[:3])
        for v in results.response["violations"]
        if v.get("impact") in impacts
    ]


def serious(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page."""
    return violations(page, ("serious", "critical"))


def shot(page: Any, name: str) -> None:
    if os.environ.get("NOTIFIER_SCREENSHOTS"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name), full_page=True)


@ONE_BACKEND
def test_a_reader_subscribes_confirms_hears_changes_and_leaves(
    site: tuple[str, SmtpServer, Notifier],
) -> None:
    base, smtp, cli = site
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        context = browser.new_context(
            timezone_id="America/New_York", locale="en-US", viewport={"width": 900, "height": 900}
        )
        page = context.new_page()
        page.goto(f"{base}/?lang=en")
        assert page.get_by_role("link", name=re.compile("Talks between the presidents")).count()
        assert serious(page) == []
        shot(page, "index.png")

        page.get_by_role("link", name=re.compile("Talks between the presidents")).click()
        # The page's script put the browser's zone in the address: New York time shown.
        page.wait_for_url(re.compile(r"tz=America%2FNew_York"))
        assert "11:00" in page.locator("#viewer-time").inner_text()
        assert "19:00" in page.locator("#local-time").inner_text()
        assert page.locator("#status").inner_text().strip().startswith("Postponed")
        assert "medical" not in page.content().lower()
        assert serious(page) == []
        shot(page, "meeting.png")

        page.get_by_label("Email address").fill("reader@example.org")
        page.get_by_role("button", name="Subscribe").click()
        assert "Check your mail" in page.locator("h1").inner_text()
        shot(page, "subscribe.png")
        (confirmation,) = mails_to(smtp, "reader@example.org")
        link = re.search(r"http://\S+", confirmation.get_body(("plain",)).get_content())
        assert link is not None

        page.goto(link.group(0))
        page.get_by_role("button", name="Confirm").click()
        assert "Subscription confirmed" in page.locator("h1").inner_text()
        assert serious(page) == []

        # The next status change reaches the reader, in their zone.
        changed = cli("event", TALKS, "cleared", "--reason-for", "public=cleared")
        assert changed.code == 0, changed.err
        news = mails_to(smtp, "reader@example.org", at_least=2)
        assert len(news) == 2
        assert "medical" not in news[1].as_string().lower()

        page.get_by_role("link", name="Your subscription").click()
        assert serious(page) == []
        page.get_by_label("Rescheduled").uncheck()
        page.get_by_role("button", name="Save").click()
        assert page.locator("#saved").is_visible()
        assert not page.get_by_label("Rescheduled").is_checked()
        shot(page, "manage.png")

        page.get_by_role("button", name="Unsubscribe from everything").click()
        assert "You are unsubscribed" in page.locator("h1").inner_text()
        browser.close()


@ONE_BACKEND
def test_the_zone_picker_works_without_javascript_and_docs_work_offline(
    site: tuple[str, SmtpServer, Notifier],
) -> None:
    base, _, _ = site
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        context = browser.new_context(java_script_enabled=False, locale="en-US")
        page = context.new_page()
        page.goto(f"{base}/meetings/{TALKS}?lang=en")
        assert page.locator("#viewer-time").count() == 0  # no zone chosen, no script to guess
        page.get_by_label("Show times in").fill("Asia/Tokyo")
        page.get_by_role("button", name="Show").click()
        assert "01:00" in page.locator("#viewer-time").inner_text()  # 19:00 MSK, 01:00 JST
        assert "Asia/Tokyo" in page.content()

        # /docs with every request off this machine refused: the operations still list.
        offline = browser.new_context()
        refused: list[str] = []

        def only_here(route: Any) -> None:
            if route.request.url.startswith(base):
                route.continue_()
            else:
                refused.append(route.request.url)
                route.abort()

        offline.route("**/*", only_here)
        docs = offline.new_page()
        docs.goto(f"{base}/docs")
        docs.wait_for_selector(".opblock", timeout=15_000)
        assert docs.locator(".opblock").count() >= 17
        assert refused == []
        browser.close()


WIDTHS = (320, 390, 1280)


def reader_links(base: str, smtp: SmtpServer, cli: Notifier, browser: Any) -> dict[str, str]:
    """Every kind of page a reader reaches, by name: subscribing in the browser gives the
    confirm link (mailed), confirming gives the manage link, a change the unsubscribe link."""
    page = browser.new_page()
    page.goto(f"{base}/meetings/{TALKS}?lang=en&tz=Europe/Berlin")
    page.get_by_label("Email address").fill("tour@example.org")
    page.get_by_role("button", name="Subscribe").click()
    (mail,) = mails_to(smtp, "tour@example.org")
    confirm = re.search(r"http://\S+", mail.get_body(("plain",)).get_content())
    assert confirm is not None
    links = {"index": "/", "meeting": f"/meetings/{TALKS}?tz=Europe/Berlin"}
    # A second reader's confirmation stays pending, so its page can be toured.
    page.goto(f"{base}/meetings/{TALKS}?lang=en&tz=Europe/Berlin")
    page.get_by_label("Email address").fill("second@example.org")
    page.get_by_role("button", name="Subscribe").click()
    (pending,) = mails_to(smtp, "second@example.org")
    second = re.search(r"http://\S+", pending.get_body(("plain",)).get_content())
    assert second is not None
    links["confirm"] = second.group(0).removeprefix(base)
    page.goto(confirm.group(0))
    page.get_by_role("button", name="Confirm").click()
    links["manage"] = page.locator("#manage-link").get_attribute("href") or ""
    changed = cli("event", TALKS, "cleared", "--reason-for", "public=cleared")
    assert changed.code == 0, changed.err
    news = mails_to(smtp, "tour@example.org", at_least=2)[-1]
    unsubscribe = re.search(r"<(http[^>]+)>", news["List-Unsubscribe"])
    assert unsubscribe is not None
    links["unsubscribe"] = unsubscribe.group(1).removeprefix(base)
    links["not-found"] = "/meetings/no-such-meeting"
    page.close()
    return links


@ONE_BACKEND
def test_every_page_fits_320px_and_passes_axe_in_both_languages_and_themes(
    site: tuple[str, SmtpServer, Notifier],
) -> None:
    base, smtp, cli = site
    problems: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        links = reader_links(base, smtp, cli, browser)
        for lang, locale in (("en", "en-GB"), ("ru", "ru-RU")):
            for scheme in ("light", "dark"):
                context = browser.new_context(
                    locale=locale, color_scheme=scheme, timezone_id="Europe/Berlin"
                )
                page = context.new_page()
                for name, path in links.items():
                    sep = "&" if "?" in path else "?"
                    for width in WIDTHS if os.environ.get("NOTIFIER_SCREENSHOTS") else (320, 390):
                        page.set_viewport_size({"width": width, "height": 800})
                        page.goto(f"{base}{path}{sep}lang={lang}")
                        assert page.locator("html").get_attribute("lang") == lang, name
                        wide = page.evaluate("document.documentElement.scrollWidth")
                        if wide > width:
                            problems.append(f"{name} {lang} {scheme}: {wide} px wide at {width}")
                        # axe once per page, language and theme (its rules do not depend on
                        # the width; contrast is the theme's), at the phone's width.
                        if width == 390:
                            problems += [
                                f"{name} {lang} {scheme} {width}: {v}" for v in violations(page)
                            ]
                        suffix = "" if lang == "en" else f"-{lang}"
                        suffix += "" if scheme == "light" else "-dark"
                        suffix += "" if width == 1280 else f"-{width}"
                        if width != 320 and (lang == "en" or scheme == "light"):
                            shot(page, f"{name}{suffix}.png")
                context.close()
        browser.close()
    assert problems == []


def test_the_screenshots_the_readme_shows_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in re.findall(r"docs/screenshots/([\w.-]+\.png)", readme):
        assert (SHOTS / name).is_file(), name
    assert Path(SHOTS / "meeting.png").is_file()


def test_the_html_email_reads_on_a_phone_and_a_desktop_in_both_themes() -> None:
    """The HTML part of every kind of message (the golden files of
    tests/unit/test_golden_messages.py), in Chromium at 390 and 800 px, light and dark:
    nothing wider than the screen, nothing clipped; screenshots of some in docs/screenshots/."""
    golden = ROOT / "tests" / "golden"
    problems: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        for scheme in ("light", "dark"):
            context = browser.new_context(color_scheme=scheme, java_script_enabled=False)
            page = context.new_page()
            for path in sorted(golden.glob("*.html")):
                for width in (390, 800) if os.environ.get("NOTIFIER_SCREENSHOTS") else (390,):
                    page.set_viewport_size({"width": width, "height": 900})
                    page.set_content(path.read_text(encoding="utf-8"))
                    wide = page.evaluate("document.documentElement.scrollWidth")
                    if wide > width:
                        problems.append(f"{path.name} {scheme}: {wide} px wide at {width}")
                    if path.stem in ("rescheduled.public.en", "postponed.participants.ru"):
                        suffix = ("" if scheme == "light" else "-dark") + f"-{width}"
                        shot(page, f"email-{path.stem.replace('.', '-')}{suffix}.png")
            context.close()
        browser.close()
    assert problems == []
