"""DSNs are read defensively: whatever arrives, `read_report` answers and never raises."""

from __future__ import annotations

from notifier.dsn import MAX_BYTES, Report, Unreadable, read_report

GIVEN_UP = b"""From: MAILER-DAEMON@mx.example.org
To: bounces+x@example.org
Message-ID: <given-up@mx.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Gave up after 5 days.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; slow@example.org
Action: failed
Status: 4.4.7
Diagnostic-Code: X-Postfix; delivery temporarily suspended

--b--
""".replace(b"\n", b"\r\n")


def test_a_failure_with_a_4xx_status_is_soft_even_when_the_mta_gave_up() -> None:
    report = read_report(GIVEN_UP)
    assert isinstance(report, Report)
    [failure] = report.failures
    assert failure.address == "slow@example.org"
    assert failure.status == "4.4.7"
    assert not failure.permanent
    assert report.reporting_mta == "mx.example.org"


def test_hostile_input_is_unreadable_or_empty_never_an_exception() -> None:
    nested = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
        for n in range(5000)
    )
    for raw in (
        b"",
        b"\x00\xff" * 10_000,
        nested,
        b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: ;;;\r\n",
        b"Content-Type: multipart/report; boundary=\r\n\r\n--\r\n--\r\n",
        GIVEN_UP.replace(b"slow@example.org", b"\xff\xfe@\xff"),
    ):
        report = read_report(raw)
        assert isinstance(report, Unreadable) or all(f.address for f in report.failures), raw[:40]


def test_more_than_1_mib_is_not_read() -> None:
    report = read_report(GIVEN_UP + b"x" * MAX_BYTES)
    assert isinstance(report, Unreadable)
    assert "larger than" in report.reason
