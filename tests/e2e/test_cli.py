"""The CLI contract of DESIGN.md, driven as a subprocess on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from notifier.store.migrate import head_revision
from tests.e2e.conftest import Notifier, Result

TALKS = "moscow-tskhinvali-talks"


def assert_user_error(result: Result, pattern: str) -> None:
    """Exit 1, one line on stderr matching `pattern`, no traceback, nothing on stdout."""
    assert result.code == 1, (result.code, result.out, result.err)
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert re.search(pattern, lines[0]), lines[0]


#: For what does not depend on the backend (`check`, usage errors, the form of an error
#: line): one backend is enough.
NO_DATABASE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@NO_DATABASE
def test_check_passes_on_the_shipped_config(notifier: Notifier) -> None:
    result = notifier("check")
    assert result.code == 0, result.err
    assert "OK: 1 meeting, 5 subscribers" in result.out
    # Plain http on loopback is for trying notifier out: accepted, with a warning.
    assert "warning: public_url http://127.0.0.1:8080/ is not https" in result.err


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        (
            '"Asia/Tbilisi"',
            '"Asia/Tbilissi"',
            r"notifier\.toml:\d+: subscribers\[2\]\.timezone: "
            r"unknown time zone 'Asia/Tbilissi'",
        ),
        (
            'tags = ["bilateral", "moscow"]',
            'tags = ["bilateral", "moscow"',
            r"notifier\.toml:\d+: "
            r"TOML syntax error",
        ),
        (
            'reminders = ["2h"]',
            'reminders = ["2 hours"]',
            r"subscribers\[2\]\.reminders\[0\]: "
            r"invalid duration",
        ),
        ("[smtp]", "[smtp]\nhots = 'x'", r"notifier\.toml:\d+: smtp\.hots: unknown key"),
        (
            'title = "Talks between',
            'title = "Talks\\r\\nBcc: x@evil.example between',
            r"notifier\.toml:\d+: meetings\[0\]\.title: one-line text may not contain U\+000D",
        ),
        (
            'name = "Kremlin press desk"',
            'name = "=?utf-8?b?DQpCY2M6IHg=?="',
            r"notifier\.toml:\d+: subscribers\[0\]\.name: looks like an RFC 2047 encoded word",
        ),
        (
            'sender = "Notifier <notifier@example.org>"',
            'sender = "Notifier <notifier@example.org>\\r\\nBcc: x@evil.example"',
            r"notifier\.toml:\d+: smtp\.sender: one-line text may not contain",
        ),
        (
            'public_url = "http://127.0.0.1:8080"',
            'public_url = "http://notify.example.org"',
            r"notifier\.toml:\d+: public_url: public_url must be https for notify\.example\.org",
        ),
        (
            "[smtp]",
            '[smtp]\npassword = "hunter2"',
            r"notifier\.toml:\d+: smtp: a password with security = 'none'",
        ),
        (
            'notify = ["json://127.0.0.1:9000/chat"]',
            'notify = ["smtp://user:Zq7Token@mail.example.org"]',
            r"notifier\.toml:\d+: subscribers\[4\]\.notify\[0\]: scheme 'smtp' is not allowed",
        ),
        (
            'notify = ["json://127.0.0.1:9000/chat"]',
            'notify = ["tgram://not-a-bot-token"]',
            r"notifier\.toml:\d+: subscribers\[4\]\.notify\[0\]: Apprise cannot read",
        ),
        (
            'audience = "participants"                # reads the medical reason',
            'audience = "delegates"',
            r"notifier\.toml:\d+: subscribers\[2\]\.audience: unknown audience 'delegates'",
        ),
    ],
)
@NO_DATABASE
def test_check_fails_clearly_on_a_broken_copy(
    notifier: Notifier, old: str, new: str, pattern: str
) -> None:
    text = notifier.config.read_text(encoding="utf-8")
    notifier.config.write_text(text.replace(old, new, 1), encoding="utf-8")
    assert_user_error(notifier("check"), pattern)


def test_the_seed_scenario_through_the_cli(notifier: Notifier) -> None:
    assert notifier("db", "upgrade").code == 0  # listing commands never create or migrate
    before = notifier("meetings", "show", TALKS, "--json")
    assert before.code == 0, before.err
    start = before.json()["meeting"]
    assert start["status"] == "postponed"

    assert start["reason"]["participants"] == "medical reasons"  # operators see every variant
    assert_user_error(
        notifier("event", TALKS, "cleared", "--reason-for", "pubic=typo"),
        r"reason\.pubic: unknown audience 'pubic'",
    )
    assert_user_error(
        notifier("event", TALKS, "cleared", "--reason-for", "no equals sign"),
        r"--reason-for: 'no equals sign' is not \[LANG:\]AUDIENCE=TEXT",
    )
    cleared = notifier(
        "event",
        TALKS,
        "cleared",
        "--reason-for",
        "public=cleared",
        "--reason-for",
        "participants=second health assessment negative",
    )
    assert cleared.code == 0, cleared.err
    assert f"{TALKS}: postponed -> cleared (sequence {start['sequence'] + 1})" in cleared.out

    moved = notifier(
        "event",
        TALKS,
        "rescheduled",
        "--reason",
        "talks moved to the evening",
        "--starts-at",
        "2030-03-02T21:00:00+03:00",
        "--json",
    )
    assert moved.code == 0, moved.err
    assert moved.json()["meeting"]["starts_at"] == "2030-03-02T21:00:00+03:00"
    assert moved.json()["change"]["previous_starts_at"] == start["starts_at"]

    shown = notifier("meetings", "show", TALKS, "--json").json()
    assert shown["meeting"]["sequence"] == start["sequence"] + 2
    assert [h["to"] for h in shown["history"]][-3:] == ["postponed", "cleared", "rescheduled"]
    assert shown["history"][-2]["reason"] == {
        "public": "cleared",
        "participants": "second health assessment negative",
    }
    assert shown["history"][-1]["source"] == "cli"

    table = notifier("meetings", "show", TALKS)
    assert "postponed -> cleared" in table.out
    assert "public: cleared; participants: second health assessment negative" in table.out
    assert "moved from 2026-03-02 19:00 MSK" in table.out


def test_an_impossible_transition_exits_1_and_changes_nothing(notifier: Notifier) -> None:
    assert notifier("event", TALKS, "cancelled", "--reason", "called off").code == 0
    before = notifier("meetings", "show", TALKS, "--json").out
    assert_user_error(
        notifier("event", TALKS, "in_progress"),
        r"cannot go from cancelled to in_progress .*force overrides",
    )
    assert notifier("meetings", "show", TALKS, "--json").out == before
    forced = notifier("event", TALKS, "in_progress", "--force", "--json")
    assert forced.code == 0
    assert forced.json()["change"]["forced"] is True


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (("event", "no-such-meeting", "cleared"), r"unknown meeting 'no-such-meeting'"),
        (
            ("event", TALKS, "rescheduled", "--starts-at", "2030-03-02T21:00+05:00[Europe/Moscow]"),
            r"starts_at: the offset \+05:00 disagrees with Europe/Moscow's rules",
        ),
        (
            ("event", TALKS, "rescheduled", "--starts-at", "tomorrow"),
            r"--starts-at: invalid time 'tomorrow': write 2026-12-10T19:00",
        ),
        (("event", TALKS, "rescheduled"), r"needs the new starts_at"),
        (
            ("event", TALKS, "cleared", "--reason", "ok\r\nBcc: x@evil.example"),
            r"reason: one-line text may not contain U\+000D",
        ),
        (
            ("event", TALKS, "cleared", "--condition", "=?utf-8?q?=0D=0AX:_y?="),
            r"conditions: looks like an RFC 2047 encoded word",
        ),
        (("meetings", "show", "nope"), r"unknown meeting 'nope'"),
        (("subscribers", "show", "nope"), r"unknown subscriber 'nope'"),
    ],
)
@NO_DATABASE  # the message's form; the store's answers are proven on both in tests/integration
def test_bad_input_is_one_line_and_exit_1(
    notifier: Notifier, args: tuple[str, ...], pattern: str
) -> None:
    assert notifier("db", "upgrade").code == 0
    assert_user_error(notifier(*args), pattern)


@NO_DATABASE
def test_usage_errors_exit_2(notifier: Notifier) -> None:
    assert notifier("event", TALKS, "adjourned").code == 2
    assert notifier("no-such-command").code == 2


@NO_DATABASE
def test_the_entry_point_as_a_real_process_says_the_same(notifier: Notifier) -> None:
    """`python -m notifier` itself: what the in-process runs stand in for, once for real."""
    version = notifier("--version", process=True)
    assert version.code == 0
    assert re.fullmatch(r"notifier \S+\n", version.out), version.out
    assert notifier("--version").out == version.out
    assert notifier("no-such-command", process=True).code == 2
    checked = notifier("check", process=True)
    assert checked.code == 0, checked.err
    assert checked.out == notifier("check").out
    notifier.env["NOTIFIER_DATABASE_URL"] = "postgresql+asyncpg://someone:s3cret@127.0.0.1:1/x"
    assert_user_error(notifier("meetings", process=True), r"database postgresql\+asyncpg://")


def test_a_repeated_event_id_is_a_no_op(notifier: Notifier) -> None:
    first = notifier("event", TALKS, "cleared", "--id", "clearance-1")
    assert first.code == 0
    again = notifier("event", TALKS, "cleared", "--id", "clearance-1")
    assert again.code == 0, again.err
    assert "already applied" in again.out
    history = notifier("meetings", "show", TALKS, "--json").json()["history"]
    assert [h["event_id"] for h in history].count("clearance-1") == 1


def test_listings_have_json_and_never_print_secrets(notifier: Notifier) -> None:
    assert notifier("db", "upgrade").code == 0
    meetings = notifier("meetings", "--json").json()
    assert [m["id"] for m in meetings] == [TALKS]
    subscribers = notifier("subscribers", "list", "--json").json()
    assert {s["id"] for s in subscribers} >= {"press-desk", "wire-service"}
    wire = notifier("subscribers", "show", "wire-service", "--json").json()
    assert wire["webhook"] == {"url": "http://127.0.0.1:9000/notifier", "secrets": 1}
    for args in (("subscribers",), ("subscribers", "show", "wire-service"), ("check",)):
        result = notifier(*args)
        assert "whsec_" not in result.out + result.err
        assert "dev-token" not in result.out + result.err


def test_db_upgrade_reports_the_revision(notifier: Notifier) -> None:
    result = notifier("db", "upgrade")
    assert result.code == 0, result.err
    assert f"is at revision {head_revision()} (latest)" in result.out


def test_the_daemon_starts_accepts_cli_events_meanwhile_and_stops_on_sigterm(
    notifier: Notifier,
) -> None:
    daemon = notifier.spawn("run")
    try:
        assert daemon.stderr is not None
        line = ""
        deadline = time.monotonic() + 30
        while "started: database" not in line and time.monotonic() < deadline:
            line = daemon.stderr.readline()
            assert line or daemon.poll() is None, "daemon exited early"
        assert "started: database" in line
        assert "meetings=1 subscribers=5" in line
        assert "password" not in line
        # The CLI writes to the same database while the daemon holds it open.
        assert notifier("event", TALKS, "cleared").code == 0
        daemon.send_signal(signal.SIGTERM)
        _, rest = daemon.communicate(timeout=30)
        assert daemon.returncode == 0, rest
        assert "stopping" in rest
    finally:
        if daemon.poll() is None:
            daemon.kill()
        daemon.communicate()


def test_an_unreachable_database_is_one_line_without_the_password(notifier: Notifier) -> None:
    notifier.env["NOTIFIER_DATABASE_URL"] = "postgresql+asyncpg://someone:s3cret@127.0.0.1:1/x"
    result = notifier("meetings")
    assert_user_error(result, r"database postgresql\+asyncpg://someone:\*\*\*@127\.0\.0\.1:1/x: ")
    assert "s3cret" not in result.err


def test_check_renders_every_template_and_names_a_broken_one(notifier: Notifier) -> None:
    templates = notifier.cwd / "config" / "templates" / "en"
    templates.mkdir(parents=True)
    (templates / "subject.txt").write_text("{{ meeting.title }\n")
    text = notifier.config.read_text(encoding="utf-8")
    notifier.config.write_text('templates_dir = "config/templates"\n' + text, encoding="utf-8")
    result = notifier("check")
    assert result.code == 1
    assert "Traceback" not in result.err
    assert "config/templates/en/subject.txt:1: " in result.err


def test_render_prints_the_exact_message(notifier: Notifier) -> None:
    assert notifier("db", "upgrade").code == 0
    email = notifier(
        "render", "meeting.postponed", "--meeting", TALKS, "--subscriber", "press-desk"
    )
    assert email.code == 0, email.err
    assert "Message-ID: <msg_preview@example.org>" in email.out
    assert "Content-Type: text/calendar; charset=utf-8; method=REQUEST" in email.out
    assert "List-Unsubscribe: <http://127.0.0.1:8080/unsubscribe/" in email.out
    text = notifier(
        "render",
        "meeting.postponed",
        "--meeting",
        TALKS,
        "--subscriber",
        "press-desk",
        "--part",
        "text",
    )
    # The press desk reads the press's view of the postponement; the medical reason is
    # the participants', and `--audience` shows what they would read.
    assert text.out.startswith("Встреча отложена.\n")  # its reason only said "postponed"
    assert "medical" not in email.out + text.out
    as_participant = notifier(
        "render",
        "meeting.postponed",
        "--meeting",
        TALKS,
        "--subscriber",
        "press-desk",
        "--part",
        "text",
        "--audience",
        "participants",
    )
    assert as_participant.out.startswith("Встреча отложена (по медицинским причинам).")
    hook = notifier(
        "render", "meeting.reminder", "--meeting", TALKS, "--subscriber", "wire-service"
    )
    body = hook.json()
    assert body["type"] == "meeting.reminder"
    assert body["data"]["offset"] == "1h"
    assert body["data"]["audience"] == "press"
    assert body["data"]["meeting"]["reason"] == "postponed; a new date will be announced"
    assert body["data"]["meeting"]["conditions"] == []
    assert_user_error(
        notifier(
            "render",
            "meeting.postponed",
            "--meeting",
            TALKS,
            "--subscriber",
            "press-desk",
            "--audience",
            "board",
        ),
        r"audience: unknown audience 'board'",
    )
    assert_user_error(
        notifier("render", "meeting.cleared", "--meeting", TALKS, "--subscriber", "nobody"),
        r"unknown subscriber 'nobody'",
    )
    # The chat message, in the duty officer's language and audience (participants).
    chat = notifier(
        "render",
        "meeting.postponed",
        "--meeting",
        TALKS,
        "--subscriber",
        "duty-officer-chat",
        "--channel",
        "notify",
    )
    assert chat.code == 0, chat.err
    assert chat.out.startswith("**Отложена: Переговоры президентов России")
    assert "по медицинским причинам" in chat.out
    assert "http://127.0.0.1:8080/meetings/moscow-tskhinvali-talks" in chat.out


def test_render_shows_what_a_reader_got_for_that_change_not_the_state_now(
    notifier: Notifier,
) -> None:
    """The README's walk renders the reschedule after the cancellation: the reader was
    sent a reschedule, and that is what render prints (not a reschedule saying cancelled)."""
    assert notifier("event", TALKS, "cleared", "--reason", "assessment negative").code == 0
    moved = notifier("event", TALKS, "rescheduled", "--starts-at", "2030-03-02T21:00+03:00")
    assert moved.code == 0, moved.err
    assert notifier("event", TALKS, "cancelled", "--reason", "called off").code == 0
    sent = notifier(
        "render", "meeting.rescheduled", "--meeting", TALKS, "--subscriber", "wire-service"
    )
    assert sent.code == 0, sent.err
    assert sent.err == ""  # what was sent: nothing to warn of
    body = sent.json()
    assert body["type"] == "meeting.rescheduled"
    assert body["data"]["meeting"]["status"] == "rescheduled"
    assert body["data"]["change"]["starts_at"] == "2030-03-02T21:00:00+03:00"
    history = notifier("meetings", "show", TALKS, "--json").json()["history"]
    cleared = next(e["sequence"] for e in history if e["kind"] == "meeting.cleared")
    by_entry = notifier(
        "render",
        "meeting.cleared",
        "--meeting",
        TALKS,
        "--subscriber",
        "wire-service",
        "--entry",
        str(cleared),
    )
    assert by_entry.json()["data"]["meeting"]["status"] == "cleared"
    assert_user_error(
        notifier(
            "render",
            "meeting.rescheduled",
            "--meeting",
            TALKS,
            "--subscriber",
            "wire-service",
            "--entry",
            str(cleared),
        ),
        rf"change {cleared} of '{TALKS}' is meeting.cleared, not meeting.rescheduled",
    )
    never = notifier(
        "render", "meeting.concluded", "--meeting", TALKS, "--subscriber", "wire-service"
    )
    assert never.code == 0
    assert never.err.strip() == (
        f"notifier: note: meeting '{TALKS}' has no meeting.concluded change: this shows one "
        "as it would read now, from the meeting as it is"
    )


def test_deliveries_are_listed_shown_and_replayed(notifier: Notifier) -> None:
    assert notifier("event", TALKS, "cleared", "--reason", "clear").code == 0
    pending = notifier("deliveries", "list", "--status", "pending", "--json").json()
    # press desk, delegation and correspondent by email; wire and correspondent by webhook;
    # the duty officer by chat
    assert sorted((d["subscriber"], d["channel"]) for d in pending) == [
        ("duty-officer-chat", "notify"),
        ("foreign-correspondent", "email"),
        ("foreign-correspondent", "webhook"),
        ("ossetian-delegation", "email"),
        ("press-desk", "email"),
        ("wire-service", "webhook"),
    ]
    assert {d["kind"] for d in pending} == {"meeting.cleared"}
    first = pending[0]["id"]
    shown = notifier("deliveries", "show", first, "--json").json()
    assert shown["attempts_log"] == []
    assert_user_error(
        notifier("deliveries", "show", first, "--render"),
        r"has no message on record: (it has not been tried yet|it is a \w+ delivery)",
    )
    retried = notifier("deliveries", "retry", first)
    assert retried.code == 0, retried.err
    assert "due now" in retried.out
    assert_user_error(notifier("deliveries", "retry", "msg_nope"), r"unknown delivery")
    assert notifier("deliveries", "--status", "dead").out.strip() == "no deliveries dead"
    bulk = notifier("deliveries", "retry", "--status", "pending", "--since", "1h", "--dry-run")
    assert bulk.code == 0, bulk.err
    assert bulk.out.strip() == "would replay 6 deliveries"
    assert_user_error(notifier("deliveries", "retry"), r"give a delivery ID or --status")
    assert_user_error(
        notifier("subscribers", "enable", "wire-service"),
        r"subscriber 'wire-service' has no disabled webhook endpoint",
    )
    suppressed = notifier("suppressions", "--json")
    assert suppressed.code == 0, suppressed.err
    assert suppressed.json() == []
    assert_user_error(
        notifier("deliveries", "retry", "--status", "sent"), r"sent deliveries cannot be replayed"
    )


def test_leader_says_who_runs_the_scheduler(notifier: Notifier) -> None:
    assert notifier("db", "upgrade").code == 0
    before = notifier("leader")
    assert (before.code, before.out) == (0, "no replica has led the scheduler yet\n")
    daemon = notifier.spawn("run")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            shown = notifier("leader", "--json")
            assert shown.code == 0, shown.err
            if shown.json() is not None:
                break
            time.sleep(0.2)
        lease = shown.json()
        assert lease["term"] >= 1
        assert lease["live"] is True
        assert lease["holder"].split(":")[1] == str(daemon.pid)
        assert re.match(rf"term {lease['term']}: \S+ leads", notifier("leader").out)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
    assert daemon.returncode == 0
    after = notifier("leader")
    assert "the next replica to renew takes over" in after.out


def test_the_daemon_reads_a_real_world_feed_and_sources_shows_what_it_refused(
    notifier: Notifier,
) -> None:
    body = (Path(__file__).parent.parent / "fixtures" / "ics" / "bad_events.ics").read_bytes()

    class Serve(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/calendar; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Serve)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/talks.ics"
    text = notifier.config.read_text().replace(
        "[feeds]\nallow_cidrs = []", '[feeds]\nallow_cidrs = ["127.0.0.1/32"]'
    )
    notifier.config.write_text(text + f'\n[[sources]]\nkind = "ics"\nurl = "{url}"\nevery = "1s"\n')
    assert notifier("db", "upgrade").code == 0
    assert notifier("sources").out.endswith("never polled\n")
    daemon = notifier.spawn("run")
    try:
        # Three full reads (the server sends no ETag): the reasons are logged after the first.
        polls: set[str] = set()
        deadline = time.monotonic() + 60
        while len(polls) < 3 and time.monotonic() < deadline:
            shown = notifier("sources", "--json")
            assert shown.code == 0, shown.err
            (source,) = shown.json()
            if source["last_ok_at"]:
                polls.add(source["last_ok_at"])
            time.sleep(0.3)
        assert len(polls) == 3
    finally:
        # Killed outright: its feed parser process must not outlive it (holding the
        # daemon's stderr open, which would keep this from returning).
        daemon.send_signal(signal.SIGKILL)
        _, err = daemon.communicate(timeout=15)
        server.shutdown()
        server.server_close()
    assert (source["followed"], source["skipped"], source["refused"]) == (2, 0, 7)
    assert "Traceback" not in err
    assert err.count("unknown-zone@cms.example") == 1  # logged once, not at every poll
    listed = notifier("sources", "--problems", "10")
    assert f"{url} (ics): ok at " in listed.out
    assert "2 followed, 0 skipped, 7 refused" in listed.out
    assert "- two-starts@cms.example: more than one DTSTART" in listed.out
    meetings = notifier("meetings", "--json").json()
    assert {m["title"] for m in meetings} >= {"Good one", "Good two"}


@NO_DATABASE
def test_listing_commands_read_the_store_as_it_is_and_never_write(notifier: Notifier) -> None:
    database = notifier.cwd / "notifier.db"
    for args in (("meetings",), ("subscribers", "--json"), ("deliveries",), ("sources",)):
        missing = notifier(*args)
        assert_user_error(missing, r"no database at .*notifier db upgrade")
    assert not database.exists()  # nothing created
    assert notifier("db", "upgrade").code == 0
    listed = notifier("meetings", "--json").json()
    # A meeting added to the file is not written by a listing: only by what writes.
    notifier.config.write_text(
        notifier.config.read_text()
        + '\n[[meetings]]\nid = "added"\ntitle = "Added"\ntimezone = "UTC"\n'
        'starts_at = "2030-01-01T10:00:00+00:00"\n'
    )
    assert notifier("meetings", "--json").json() == listed
    assert notifier("db", "upgrade").code == 0
    assert "added" in {m["id"] for m in notifier("meetings", "--json").json()}
