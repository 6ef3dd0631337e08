"""SpamAssassin as a real peer: every kind of message, in every shipped locale, scores low
and fires no rule about its structure (MIME, headers, encodings).

spamd runs on a free loopback port for the session, with network tests off (-L); `spamc`
asks it for a report per message. `.ci/run` installs Debian's spamassassin when missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from notifier.delivery import Postman
from notifier.domain.outbox import Channel, Contact, Delivery
from notifier.rendering import SHIPPED_LOCALES, Renderer, sample_notices
from tests.integration.peers import free_port
from tests.wire import assert_clean_wire

#: Rules about how a message is built rather than what it says: none of them may fire.
STRUCTURAL = re.compile(
    r"^(MIME_|MPART_|HEADER_|HDRS?_|MISSING_|INVALID_|FROM_|TO_|MSGID|DATE_|SUBJ_|CTYPE_|"
    r"CHARSET_|LIST_|BASE64_|QP_|PP_MIME|TVD_|FORGED_|EMPTY_|ENCODED_|UTF8_|HTML_MIME|"
    r"HTML_MESSAGE_ONLY|HTML_IMAGE|NULL_IN_BODY|BODY_8BITS|MALFORMED|UNPARSEABLE|"
    r"SPOOFED_|FSL_|MSOE_|RATWARE|HEAD_|X_|T_MIME|T_HDRS|T_FROM|T_LIST)"
)
NOW = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def spamd() -> Iterator[int]:
    binary = shutil.which("spamd") or (
        "/usr/sbin/spamd" if os.path.exists("/usr/sbin/spamd") else None
    )
    if binary is None or shutil.which("spamc") is None:
        if os.environ.get("CI"):
            pytest.fail("spamassassin is not installed (.ci/run installs it)")
        pytest.skip("spamassassin is not installed: apt-get install spamassassin")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "-L",
            "-x",
            "--listen",
            f"127.0.0.1:{port}",
            "--max-children",
            "2",
            "-u",
            "nobody",
            "--syslog",
            "stderr",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["spamc", "-p", str(port), "-K"], capture_output=True).returncode:
            assert process.poll() is None, "spamd exited"
            assert time.monotonic() < deadline, "spamd did not answer within 60 s"
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def messages() -> Iterator[tuple[str, bytes]]:
    postman = Postman(
        renderer=Renderer(),
        email=None,
        webhook=None,
        sender="Protocol Office <notifier@example.org>",
        public_url="https://notify.example.org",
        link_key="key",
    )
    for locale in SHIPPED_LOCALES:
        reader = Contact(
            id="desk",
            name="Пресс-служба" if locale == "ru" else "Press desk",
            locale=locale,
            timezone="Europe/Moscow",
            active=True,
            email="desk@example.org",
            webhook=None,
        )
        for number, notice in enumerate(sample_notices(NOW)):
            prepared = postman.prepare(notice, locale=locale, timezone=reader.timezone, now=NOW)
            delivery = Delivery(
                id=f"msg_{number:032d}",
                meeting_id=notice.meeting.id,
                subscriber_id=reader.id,
                channel=Channel.EMAIL,
                kind=notice.kind,
                sequence=notice.meeting.sequence,
                notice_id=f"n{number}",
                next_attempt_at=NOW,
            )
            yield (
                f"{locale}/{number}:{notice.kind.value}",
                postman.email_bytes(delivery, reader, prepared),
            )


def test_every_kind_and_locale_scores_low_with_no_structural_rule(spamd: int) -> None:
    seen = 0
    for label, raw in messages():
        assert_clean_wire(raw, recipient="desk@example.org")
        report = subprocess.run(
            ["spamc", "-p", str(spamd), "-R"], input=raw, capture_output=True, check=False
        ).stdout.decode(errors="replace")
        score = float(report.split("/", 1)[0])
        fired = set(re.findall(r"^\s*-?\d+(?:\.\d+)?\s+([A-Z][A-Z0-9_]+)\s", report, re.M))
        assert score < 2.0, f"{label}: scored {score}\n{report}"
        structural = sorted(rule for rule in fired if STRUCTURAL.match(rule))
        assert not structural, f"{label}: structural rules {structural}\n{report}"
        seen += 1
    assert seen == len(SHIPPED_LOCALES) * len(sample_notices(NOW))
