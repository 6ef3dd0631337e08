"""``[bounces]``: off by default; `notifier check` refuses a bad return path or listen
address in one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from notifier.cli import cli
from notifier.domain.errors import ConfigError
from notifier.settings import load_settings


def write(tmp_path: Path, bounces: str) -> Path:
    path = tmp_path / "notifier.toml"
    path.write_text(f"[bounces]\n{bounces}\n")
    return path


def test_bounces_are_off_unless_configured(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    assert settings.bounces.address is None
    assert settings.bounces.listen is None
    on = load_settings(
        write(tmp_path, 'address = "Bounces@Example.org"\nlisten = "127.0.0.1:2525"')
    )
    assert on.bounces.address == "Bounces@Example.org"
    assert on.bounces.listen == "127.0.0.1:2525"


@pytest.mark.parametrize(
    ("bounces", "field", "complaint"),
    [
        ('address = "not an address"', "bounces.address", "not an email address"),
        ('address = "a+b@example.org"', "bounces.address", "may not hold '+'"),
        (f'address = "{"b" * 22}@example.org"', "bounces.address", "at most 21 characters"),
        ('address = "b@example.org"\nlisten = "2525"', "bounces.listen", "is not host:port"),
        ('address = "b@example.org"\nlisten = "h:99999"', "bounces.listen", "is not host:port"),
        ('listen = "127.0.0.1:2525"', "bounces", "bounces.listen needs bounces.address"),
        (
            'address = "b@example.org"\nimap = "pop3://u:p@mail.example.org/"',
            "bounces.imap",
            "imaps://",
        ),
        (
            'address = "b@example.org"\nimap = "imap://u:p@mail.example.org/INBOX"',
            "bounces.imap",
            "password unencrypted",
        ),
        (
            'address = "b@example.org"\nimap = "imaps://mail.example.org/"',
            "bounces.imap",
            "user:password@host",
        ),
        ('imap = "imaps://u:p@mail.example.org/"', "bounces", "bounces.imap needs bounces.address"),
        ('address = "b@example.org"\nevery = "2d"', "bounces.every", "between 1s and 1d"),
    ],
)
def test_a_bad_bounce_setting_is_one_line_naming_the_field(
    tmp_path: Path, bounces: str, field: str, complaint: str
) -> None:
    path = write(tmp_path, bounces)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert f": {field}: " in raised.value.message, raised.value.message
    assert complaint in raised.value.message
    result = CliRunner().invoke(cli, ["check", "--config", str(path)])
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert field in line
    assert complaint in line


def test_the_mailbox_password_is_a_secret_the_logs_hide(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path,
            'address = "b@example.org"\nimap = "imaps://u:p%40ss@mail.example.org/Bounces"',
        )
    )
    assert "p@ss" in settings.secrets()
    assert "p@ss" not in repr(settings.bounces)
