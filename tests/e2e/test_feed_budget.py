"""The daemon with a hostile feed beside a normal one: the budget set in the config file
refuses the hostile feed, `notifier sources` says why, and the normal feed is applied."""

from __future__ import annotations

import re
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.conftest import Notifier
from tests.integration.peers import free_port

#: How long the daemon may take to apply the normal feed and refuse the hostile one.
PATIENCE = 30


def calendar(*events: str) -> bytes:
    body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    for event in events:
        body += "BEGIN:VEVENT\r\n" + event.strip().replace("\n", "\r\n") + "\r\nEND:VEVENT\r\n"
    return (body + "END:VCALENDAR\r\n").encode()


FEEDS = {
    # Day 100 is never in January: dateutil looks for it until the year 9999 (~5 s each).
    "/hostile.ics": calendar(
        *[
            f"UID:slow-{n}\nDTSTAMP:20300101T000000Z\nDTSTART:20300302T190000Z\n"
            "RRULE:FREQ=DAILY;BYMONTH=1;BYYEARDAY=100"
            for n in range(4)
        ]
    ),
    "/talks.ics": calendar(
        "UID:talks@x\nDTSTAMP:20300101T000000Z\nDTSTART:20300302T190000Z\nSUMMARY:Budget talks"
    ),
}


class Serve(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = FEEDS.get(self.path, b"")
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/calendar; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


# The store's side is proven on both backends in tests/integration/test_sources_budget.py.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_daemon_refuses_a_feed_over_its_parse_budget_and_applies_the_other(
    notifier: Notifier,
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Serve)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    shipped = notifier.config.read_text()
    text = re.sub(r'(?m)^parse_timeout = "[^"]*"', 'parse_timeout = "2s"', shipped)
    text = text.replace("[feeds]\nallow_cidrs = []", '[feeds]\nallow_cidrs = ["127.0.0.1/32"]')
    assert 'parse_timeout = "2s"' in text
    assert '[feeds]\nallow_cidrs = ["127.0.0.1/32"]' in text
    for path in FEEDS:
        text += f'\n[[sources]]\nkind = "ics"\nurl = "{base}{path}"\nevery = "1s"\n'
    notifier.config.write_text(text)
    notifier.env["NOTIFIER_LISTEN"] = f"127.0.0.1:{free_port()}"
    assert notifier("db", "upgrade").code == 0
    daemon = notifier.spawn("run")
    try:
        deadline = time.monotonic() + PATIENCE
        shown: dict[str, dict[str, object]] = {}
        while time.monotonic() < deadline:
            listed = notifier("sources", "--json")
            assert listed.code == 0, listed.err
            shown = {row["url"]: row for row in listed.json()}
            if shown[f"{base}/talks.ics"]["followed"] and shown[f"{base}/hostile.ics"]["failures"]:
                break
            time.sleep(0.3)
        table = notifier("sources").out
        meetings = notifier("meetings", "--json").json()
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
        server.shutdown()
        server.server_close()
    hostile, talks = shown[f"{base}/hostile.ics"], shown[f"{base}/talks.ics"]
    reason = "parsing took longer than 2 s (feeds.parse_timeout); feed refused"
    assert (hostile["last_error"], hostile["followed"]) == (reason, 0)
    assert (talks["followed"], talks["last_error"]) == (1, None)
    assert f"last error: {reason}" in table
    assert "Budget talks" in {m["title"] for m in meetings}
    assert "Traceback" not in err
    assert daemon.returncode == 0
