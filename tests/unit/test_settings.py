from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from notifier.domain.errors import ConfigError
from notifier.domain.models import MeetingStatus
from notifier.settings import load_settings, locate

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "notifier.toml"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NOTIFIER_* variable or .env from the developer's shell leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("NOTIFIER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text, f"the shipped config no longer contains {old!r}"
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def line_of_edit(old: str) -> int:
    """The line where the edit replacing the first `old` starts (each edit is one line)."""
    text = SHIPPED.read_text(encoding="utf-8")
    return text.count("\n", 0, text.index(old)) + 1


def test_the_shipped_config_carries_the_seed_scenario() -> None:
    settings = load_settings(SHIPPED)
    (talks,) = settings.meetings
    assert talks.id == "moscow-tskhinvali-talks"
    assert talks.timezone == "Europe/Moscow"
    assert talks.status is MeetingStatus.POSTPONED
    # The reason is tiered: the public reads "postponed", the participants the medical one.
    assert talks.reason == {
        "public": "postponed",
        "press": "postponed; a new date will be announced",
        "participants": "medical reasons",
    }
    assert any("22" in str(h.at.day) and "delegation" in str(h.reason) for h in talks.history)
    subscribers = [s.to_domain() for s in settings.subscribers]
    assert len(subscribers) >= 3
    assert {s.timezone for s in subscribers} >= {"Europe/Moscow", "America/New_York"}
    assert {s.locale for s in subscribers} == {"en", "ru"}
    assert any(s.email for s in subscribers)
    assert any(s.webhook for s in subscribers)
    press = next(s for s in subscribers if s.id == "press-desk")
    assert press.reminders == (timedelta(hours=1), timedelta(minutes=15))


def test_environment_overrides_the_file_with_nesting_and_json_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFIER_SMTP__PORT", "2525")
    monkeypatch.setenv("NOTIFIER_API_TOKENS", '["t1", "t2"]')
    monkeypatch.setenv("NOTIFIER_WEBHOOKS__ALLOW_CIDRS", '["127.0.0.1/32", "10.0.0.0/8"]')
    settings = load_settings(SHIPPED)
    assert settings.smtp.port == 2525
    assert settings.smtp.host == "127.0.0.1"  # the rest of [smtp] still comes from the file
    assert [t.get_secret_value() for t in settings.api_tokens] == ["t1", "t2"]
    assert [str(c) for c in settings.webhooks.allow_cidrs] == ["127.0.0.1/32", "10.0.0.0/8"]


def test_dotenv_sits_between_the_environment_and_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("NOTIFIER_SMTP__HOST=mail.internal\nNOTIFIER_SMTP__PORT=587\n")
    monkeypatch.setenv("NOTIFIER_SMTP__PORT", "2525")
    settings = load_settings(SHIPPED)
    assert settings.smtp.host == "mail.internal"
    assert settings.smtp.port == 2525


def test_notifier_config_names_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_CONFIG", str(SHIPPED))
    assert load_settings().config_path == SHIPPED


def test_secrets_never_show_in_repr_or_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_SMTP__PASSWORD", "hunter2-smtp")
    monkeypatch.setenv("NOTIFIER_SMTP__SECURITY", "starttls")
    settings = load_settings(SHIPPED)
    hook_secret = settings.subscribers[1].webhook.secrets[0].get_secret_value()  # type: ignore[union-attr]
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2-smtp" not in text
        assert "dev-token" not in text
        assert hook_secret not in text
    assert hook_secret not in repr(settings.subscribers[1].to_domain())


@pytest.mark.parametrize(
    ("old", "new", "field", "complaint"),
    [
        (
            'timezone = "Asia/Tbilisi"',
            'timezone = "Asia/Tbilissi"',
            "subscribers[2].timezone",
            "unknown time zone 'Asia/Tbilissi'",
        ),
        (
            'reminders = ["2h"]',
            'reminders = ["2x"]',
            "subscribers[2].reminders[0]",
            "invalid duration '2x'",
        ),
        (
            'email = "press@example.org"',
            'email = "press-at-example"',
            "subscribers[0].email",
            "not a valid email",
        ),
        (
            'url = "http://127.0.0.1:9000/berlin"',
            'url = "berlin"',
            "subscribers[3].webhook.url",
            "URL",
        ),
        (
            'starts_at = "2026-03-02T19:00:00+03:00"',
            'starts_at = "2026-03-02T19:00:00+04:00[Europe/Moscow]"',
            "meetings[0].starts_at",
            "the offset +04:00 disagrees with Europe/Moscow's rules, which give +03:00",
        ),
        (
            'starts_at = "2026-03-02T19:00:00+03:00"',
            'starts_at = "2026-03-02T19:00:00[Asia/Tokyo]"',
            "meetings[0].starts_at",
            "the time is given in [Asia/Tokyo] but the meeting's zone is Europe/Moscow",
        ),
        (
            'id = "foreign-correspondent"',
            'id = "press-desk"',
            "subscribers[3].id",
            "duplicate id 'press-desk'",
        ),
        ("port = 1025", "prot = 1025", "smtp.prot", "unknown key"),
        (
            'quiet_hours = "23:00-07:00"',
            'quiet_hours = "23-7"',
            "subscribers[2].quiet_hours",
            "invalid quiet hours",
        ),
        (
            'status = "postponed"\nreason',
            'status = "adjourned"\nreason',
            "meetings[0].status",
            "Input should be",
        ),
        (
            'events = ["*"]',
            'events = ["meeting.moved"]',
            "subscribers[0].events[0]",
            "unknown event kind",
        ),
    ],
)
def test_bad_input_names_the_file_line_and_field(
    tmp_path: Path, old: str, new: str, field: str, complaint: str
) -> None:
    path = broken_copy(tmp_path, old, new)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    message = raised.value.message
    assert message.startswith(f"{path}:{line_of_edit(old)}: {field}: "), message
    assert complaint in message
    assert "\n" not in message


def test_a_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('listen = "127.0.0.1:8080"\n[smtp\nport = 1\n')
    with pytest.raises(ConfigError, match=rf"^{path}:2: TOML syntax error: "):
        load_settings(path)


def test_a_missing_file_says_how_to_name_another(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such file .*NOTIFIER_CONFIG"):
        load_settings(tmp_path / "absent.toml")


def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_SMTP__PORT", "twenty-five")
    with pytest.raises(ConfigError, match=r"smtp\.port: .*NOTIFIER_SMTP__PORT"):
        load_settings(SHIPPED)


def test_a_webhook_to_a_private_address_is_refused_when_saved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFIER_WEBHOOKS__ALLOW_CIDRS", "[]")
    with pytest.raises(ConfigError, match=r"subscribers\[1\]\.webhook\.url: webhook target 127"):
        load_settings(SHIPPED)


def test_a_subscriber_needs_somewhere_to_send(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[subscribers]]\nid = "nobody"\ntimezone = "UTC"\n')
    with pytest.raises(ConfigError, match=r"c.toml:1: subscribers\[0\]: .*email, a webhook"):
        load_settings(path)


def test_history_must_end_in_the_meeting_status(tmp_path: Path) -> None:
    path = broken_copy(
        tmp_path,
        'status = "postponed"\n  reason = { public',
        'status = "confirmed"\n  reason = { public',
    )
    with pytest.raises(ConfigError, match="history ends in 'confirmed'"):
        load_settings(path)


def test_locate_follows_tables_and_arrays_of_tables() -> None:
    text = (
        'a = 1\n[smtp]\nhost = "x"\n[[meetings]]\nid = "m1"\n[[meetings.history]]\nat = 1\n'
        '[[meetings]]\nid = "m2"\n  [[meetings.history]]\n  at = 2\n  [[meetings.history]]\n'
        "  at = 3\n"
    )
    assert locate(text, ("a",)) == 1
    assert locate(text, ("smtp", "host")) == 3
    assert locate(text, ("smtp", "port")) == 2  # falls back to the table header
    assert locate(text, ("meetings", 1, "id")) == 9
    assert locate(text, ("meetings", 0, "history", 0, "at")) == 7
    assert locate(text, ("meetings", 1, "history", 1, "at")) == 13
    assert locate(text, ("nowhere",)) is None


def test_json_logs_carry_the_machine_fields() -> None:
    import json
    import logging

    from notifier.logs import JsonFormatter

    record = logging.makeLogRecord(
        {
            "msg": "%s: %s -> %s",
            "args": ("talks", "postponed", "cleared"),
            "levelname": "INFO",
            "name": "notifier.service",
            "action": "status_change",
            "meeting": "talks",
        }
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "talks: postponed -> cleared"
    assert line["action"] == "status_change"
    assert line["meeting"] == "talks"
    assert line["level"] == "info"


def test_unsafe_settings_are_refused_with_the_field_named(tmp_path: Path) -> None:
    long_secret = "whsec_" + base64.b64encode(b"k" * 65).decode()
    cases = {
        '[smtp]\npassword = "hunter2-pw"\n': "smtp: a password with security = 'none'",
        'public_url = "http://notify.example.org"\n': "public_url must be https",
        '[[upstreams]]\nname = "up"\nsecrets = ["' + long_secret + '"]\n': "at most 64 bytes",
    }
    for text, complaint in cases.items():
        path = tmp_path / "n.toml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(complaint)) as refused:
            load_settings(path)
        assert "hunter2" not in str(refused.value)
    accepted = tmp_path / "ok.toml"
    accepted.write_text(
        'public_url = "http://[::1]:8080"\n[smtp]\npassword = "pw"\nallow_plaintext_auth = true\n'
    )
    settings = load_settings(accepted)
    assert len(settings.warnings()) == 2


def test_a_lease_no_longer_than_one_send_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('[delivery]\nlease = "15s"\n')  # webhooks.timeout is 15s by default
    with pytest.raises(ConfigError, match=r"delivery\.lease \(15s\) must be longer than"):
        load_settings(path)
    path.write_text('[delivery]\nlease = "16s"\n[smtp]\ntimeout = "10s"\n')
    assert load_settings(path).delivery.lease.total_seconds() == 16


def test_an_unknown_audience_in_the_file_is_refused_with_its_line(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, 'audience = "participants"', 'audience = "delegates"')
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    line = line_of_edit('audience = "participants"')
    assert re.fullmatch(
        rf".*broken\.toml:{line}: subscribers\[2\]\.audience: unknown audience 'delegates'; "
        "audiences are public, press, participants, internal",
        str(raised.value),
    ), str(raised.value)
    typo = broken_copy(tmp_path, 'participants = "medical reasons" }', 'partcipants = "x" }')
    with pytest.raises(ConfigError, match=r"meetings\[0\]\.reason\.partcipants: unknown audience"):
        load_settings(typo)
    doubled = broken_copy(
        tmp_path,
        'audiences = ["public", "press", "participants", "internal"]',
        'audiences = ["public", "press", "public"]',
    )
    with pytest.raises(ConfigError, match=r"audiences: .*public named twice"):
        load_settings(doubled)


def test_a_notify_url_that_cannot_be_used_is_refused_with_its_line(tmp_path: Path) -> None:
    old = 'notify = ["json://127.0.0.1:9000/chat"]'
    for new, reason in (
        ('notify = ["bogus://token@x"]', r"scheme 'bogus' is not allowed"),
        ('notify = ["json://10.1.2.3/chat"]', r"host 10\.1\.2\.3 is a private"),
        ('notify = ["tgram://"]', r"Apprise cannot read this tgram:// URL"),
    ):
        path = broken_copy(tmp_path, old, new)
        with pytest.raises(ConfigError) as raised:
            load_settings(path)
        line = line_of_edit(old)
        assert re.fullmatch(
            rf".*broken\.toml:{line}: subscribers\[4\]\.notify\[0\]: .*{reason}.*",
            str(raised.value),
        ), str(raised.value)
        assert "token@x" not in str(raised.value)


#: Every setting that is a list of plain values, a value written the obvious way in the
#: environment, and what it reads as.
PLAIN_LISTS = [
    ("NOTIFIER_API_TOKENS", "t1", lambda s: [t.get_secret_value() for t in s.api_tokens], ["t1"]),
    (
        "NOTIFIER_API_TOKENS",
        "t1, t2",
        lambda s: [t.get_secret_value() for t in s.api_tokens],
        ["t1", "t2"],
    ),
    (
        "NOTIFIER_WEBHOOKS__ALLOW_CIDRS",
        "127.0.0.1/32",
        lambda s: [str(c) for c in s.webhooks.allow_cidrs],
        ["127.0.0.1/32"],
    ),
    (
        "NOTIFIER_FEEDS__ALLOW_CIDRS",
        "127.0.0.1/32,10.1.0.0/16",
        lambda s: [str(c) for c in s.feeds.allow_cidrs],
        ["127.0.0.1/32", "10.1.0.0/16"],
    ),
    (
        "NOTIFIER_DELIVERY__RETRY_SCHEDULE",
        "1m,5m",
        lambda s: s.delivery.retry_schedule,
        [timedelta(minutes=1), timedelta(minutes=5)],
    ),
    (
        "NOTIFIER_HTTP__TRUSTED_PROXIES",
        "10.0.0.1",
        lambda s: s.http.trusted_proxies,
        ["10.0.0.1"],
    ),
    ("NOTIFIER_NOTIFY__SCHEMES", "ntfys,json", lambda s: s.notify.schemes, ["ntfys", "json"]),
    (
        "NOTIFIER_AUDIENCES",
        "public,press,participants,internal,staff",
        lambda s: s.audiences,
        ["public", "press", "participants", "internal", "staff"],
    ),
    ("NOTIFIER_LANGUAGES", "en,ru,de", lambda s: s.languages, ["en", "ru", "de"]),
]
#: Every setting whose value is a table or a list of tables: JSON only.
TABLES = {
    "NOTIFIER_PUBLIC__LOGO": "a table",
    "NOTIFIER_PUBLIC__ORGANISATION": "a table",
    "NOTIFIER_UPSTREAMS": "a list of tables",
    "NOTIFIER_MEETINGS": "a list of tables",
    "NOTIFIER_SUBSCRIBERS": "a list of tables",
    "NOTIFIER_SOURCES": "a list of tables",
}


def _lists_and_tables(model: type[BaseModel], prefix: str) -> set[str]:
    """Every ``NOTIFIER_*`` variable of `model` whose value is a list or a map."""
    from typing import get_args, get_origin

    found = set()
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        variable = f"{prefix}{name.upper()}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found |= _lists_and_tables(annotation, f"{variable}__")
        elif get_origin(annotation) in (list, dict) or any(
            get_origin(arg) in (list, dict) for arg in get_args(annotation)
        ):
            found.add(variable)
    return found


#: Settings that are one text or a table of texts per locale: plain text or JSON.
TEXT_OR_TABLE = {"NOTIFIER_PUBLIC__TITLE"}


def test_every_list_or_map_setting_is_covered_below() -> None:
    from notifier.settings import Settings

    covered = {variable for variable, *_ in PLAIN_LISTS} | set(TABLES) | TEXT_OR_TABLE
    assert _lists_and_tables(Settings, "NOTIFIER_") == covered


@pytest.mark.parametrize(("variable", "value", "read", "expected"), PLAIN_LISTS)
def test_a_list_in_the_environment_may_be_written_comma_separated_or_as_json(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, read: Any, expected: list[Any]
) -> None:
    monkeypatch.setenv(variable, value)
    assert read(load_settings(SHIPPED)) == expected
    monkeypatch.setenv(variable, json.dumps([item.strip() for item in value.split(",")]))
    assert read(load_settings(SHIPPED)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Press office", "Press office"),
        (
            '{"en": "Press office", "ru": "Пресс-служба"}',
            {"en": "Press office", "ru": "Пресс-служба"},
        ),
    ],
)
def test_a_title_in_the_environment_is_a_text_or_a_table_per_locale(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: object
) -> None:
    monkeypatch.setenv("NOTIFIER_PUBLIC__TITLE", value)
    assert load_settings(SHIPPED).public.title == expected


@pytest.mark.parametrize(
    ("variable", "read"),
    [
        ("NOTIFIER_API_TOKENS", lambda s: s.api_tokens),
        ("NOTIFIER_HTTP__TRUSTED_PROXIES", lambda s: s.http.trusted_proxies),
        ("NOTIFIER_FEEDS__ALLOW_CIDRS", lambda s: s.feeds.allow_cidrs),
    ],
)
@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_list_in_the_environment_is_an_empty_list_at_any_depth(
    monkeypatch: pytest.MonkeyPatch, variable: str, read: Any, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert read(load_settings(SHIPPED)) == []


@pytest.mark.parametrize("variable", sorted(TABLES))
def test_a_table_in_the_environment_that_is_not_json_says_how_to_write_it(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "press-desk")
    with pytest.raises(ConfigError) as raised:
        load_settings(SHIPPED)
    how = {
        "a list of tables": 'write a list of tables as JSON \'[{"key": "value"}]\'',
        "a table": 'write a table as JSON \'{"key": "value"}\', '
        f"or set one key with {variable}__KEY",
    }[TABLES[variable]]
    assert raised.value.message == f"{variable}: not valid JSON; {how}"


@pytest.mark.parametrize(
    ("variable", "value", "how"),
    [
        ("NOTIFIER_SMTP", "mail.example.org", 'write a table as JSON \'{"key": "value"}\''),
        ("NOTIFIER_API_TOKENS", "[t1", "write a list as 'a,b' or as JSON '[\"a\", \"b\"]'"),
        ("NOTIFIER_WEBHOOKS__ALLOW_CIDRS", "[10.0.0.0/8]", "write a list as 'a,b'"),
    ],
)
def test_a_value_that_is_neither_form_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, how: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings(SHIPPED)
    message = raised.value.message
    assert message.startswith(f"{variable}: not valid JSON; {how}"), message
    assert "\n" not in message


def test_a_list_in_dotenv_is_read_alike_and_named_with_the_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("NOTIFIER_API_TOKENS=a1,a2\n")
    tokens = load_settings(SHIPPED).api_tokens
    assert [t.get_secret_value() for t in tokens] == ["a1", "a2"]
    (tmp_path / ".env").write_text("NOTIFIER_UPSTREAMS=office\n")
    with pytest.raises(ConfigError, match=r"^NOTIFIER_UPSTREAMS \(in \.env\): not valid JSON"):
        load_settings(SHIPPED)


def test_every_problem_is_a_line_of_its_own_with_its_file_line_and_field(tmp_path: Path) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    path = tmp_path / "broken.toml"
    edits = [
        ("port = 1025", "prot = 1025"),
        ('timezone = "Asia/Tbilisi"', 'timezone = "Asia/Tbilissi"'),
        ('reminders = ["2h"]', 'reminders = ["2x"]'),
    ]
    for old, new in edits:
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    port, zone, reminder = (line_of_edit(old) for old, _ in edits)
    assert raised.value.message.splitlines() == [
        f"{path}:{port}: smtp.prot: unknown key (did you mean 'port'?)",
        f"{path}:{zone}: subscribers[2].timezone: "
        "unknown time zone 'Asia/Tbilissi' (did you mean 'Asia/Tbilisi'?)",
        f"{path}:{reminder}: subscribers[2].reminders[0]: invalid duration '2x': use a number "
        "and a unit, e.g. 30s, 15m, 1h, 1d2h",
    ]
    assert "more problem" not in raised.value.message


@pytest.mark.parametrize(
    ("old", "new", "field", "complaint"),
    [
        ("[smtp]", "[smpt]", "smpt", "unknown key (did you mean 'smtp'?)"),
        ('listen = "', 'lisen = "', "lisen", "unknown key (did you mean 'listen'?)"),
        (
            'location = "Moscow, Kremlin"',
            'locaton = "Moscow, Kremlin"',
            "meetings[0].locaton",
            "unknown key (did you mean 'location'?)",
        ),
        (
            'reminders = ["2h"]',
            'remiders = ["2h"]',
            "subscribers[2].remiders",
            "unknown key (did you mean 'reminders'?)",
        ),
        ("port = 1025", "colour = 1025", "smtp.colour", "unknown key"),
        (
            'timezone = "Europe/Moscow"',
            'timezone = "Europe/Moskow"',
            "meetings[0].timezone",
            "unknown time zone 'Europe/Moskow' (did you mean 'Europe/Moscow'?)",
        ),
        (
            'timezone = "Europe/Moscow"',
            'timezone = "Mars/Olympus"',
            "meetings[0].timezone",
            "unknown time zone 'Mars/Olympus': use an IANA name such as Europe/Moscow",
        ),
    ],
)
def test_a_misspelt_key_or_zone_gets_the_close_one(
    tmp_path: Path, old: str, new: str, field: str, complaint: str
) -> None:
    path = broken_copy(tmp_path, old, new)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert raised.value.message == f"{path}:{line_of_edit(old)}: {field}: {complaint}"


def test_a_misspelt_key_of_a_source_gets_the_close_one(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(
        '[[sources]]\nkind = "ics"\nurl = "https://cal.example.org/a.ics"\nevry = "1m"\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert raised.value.message == f"{path}:4: sources[0].evry: unknown key (did you mean 'every'?)"


def test_the_cli_prints_every_problem_on_a_line_of_its_own(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from notifier.cli import cli

    path = broken_copy(tmp_path, "[smtp]", "[smpt]")
    path.write_text(
        path.read_text().replace('timezone = "Asia/Tbilisi"', 'timezone = "Asia/Tbilissi"', 1)
    )
    result = CliRunner().invoke(cli, ["check", "--config", str(path)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert all(line.startswith(f"notifier: error: {path}:") for line in lines), lines
    assert "smpt: unknown key (did you mean 'smtp'?)" in result.stderr
    assert "(did you mean 'Asia/Tbilisi'?)" in result.stderr


@pytest.mark.parametrize(
    "written",
    [
        'starts_at = "2026-03-02T19:00:00+03:00[Europe/Moscow]"',  # RFC 9557
        'starts_at = "2026-03-02T19:00"',  # the meeting's local time, as text
        "starts_at = 2026-03-02T19:00:00",  # TOML's own local date-time
        'starts_at = "2026-03-02T16:00:00Z"',  # an instant
    ],
)
def test_a_start_may_be_written_on_the_meetings_clocks(tmp_path: Path, written: str) -> None:
    path = broken_copy(tmp_path, 'starts_at = "2026-03-02T19:00:00+03:00"', written)
    (meeting,) = [m for m in load_settings(path).meetings if m.id == "moscow-tskhinvali-talks"]
    assert meeting.starts_at.astimezone(UTC) == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    assert meeting.to_domain().anchor.value == "wall"


def test_a_local_time_passed_twice_needs_its_fold_in_the_file(tmp_path: Path) -> None:
    berlin = 'timezone = "Europe/Berlin"'
    path = broken_copy(tmp_path, 'timezone = "Europe/Moscow"\nstarts_at', f"{berlin}\nstarts_at")
    text = path.read_text().replace(
        'starts_at = "2026-03-02T19:00:00+03:00"', 'starts_at = "2026-10-25T02:30"', 1
    )
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert "happens twice in Europe/Berlin" in raised.value.message
    assert "2026-10-25T02:30+01:00 (fold 1, the second)" in raised.value.message
    path.write_text(
        text.replace(
            'starts_at = "2026-10-25T02:30"', 'fold = 1\nstarts_at = "2026-10-25T02:30"', 1
        )
    )
    (meeting,) = [m for m in load_settings(path).meetings if m.id == "moscow-tskhinvali-talks"]
    assert meeting.starts_at.astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
