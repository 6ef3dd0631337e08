"""The daemon as a process: reminders across kill -9, /healthz, config reload."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.helpers.daemon import cli, start_daemon, wait_for
from tests.helpers.environment import environment
from tests.integration.conftest import SECRET
from tests.integration.peers import Receiver, free_port

READERS = 12
#: Offsets in seconds before the start; the start is set 40 s after the test begins.
OFFSETS = (30, 26, 22, 18)


def config(
    receiver: Receiver,
    starts_at: datetime,
    port: int,
    *,
    extra: str = "",
    horizon: str | None = None,
) -> str:
    lines = [
        f'listen = "127.0.0.1:{port}"',
        "[smtp]",
        'timeout = "2s"',
        "[webhooks]",
        'allow_cidrs = ["127.0.0.1/32"]',
        'timeout = "2s"',
        "[delivery]",
        'lease = "3s"',
        "[reminders]",
        'sync = "1s"',
        'grace = "10m"',
        *([f'horizon = "{horizon}"'] if horizon else []),
        "[[meetings]]",
        'id = "talks"',
        'title = "Talks"',
        'timezone = "Europe/Moscow"',
        f'starts_at = "{starts_at.isoformat()}"',
        'status = "confirmed"',
    ]
    for n in range(READERS):
        offsets = ", ".join(f'"{s}s"' for s in OFFSETS)
        lines += [
            "[[subscribers]]",
            f'id = "reader-{n}"',
            f'webhook = {{ url = "{receiver.url(f"/r/{n}")}", secrets = ["{SECRET}"] }}',
            f"reminders = [{offsets}]",
        ]
    return "\n".join(lines) + "\n" + extra


async def test_reminders_fire_once_each_across_a_kill_and_restart(
    tmp_path: Path, database_url: str
) -> None:
    receiver = await Receiver(secrets=[SECRET]).start()
    port = free_port()
    begin = datetime.now(UTC)
    # The first reminder 16 s after now: a daemon slow to start on a loaded machine (CI,
    # four suites at once) must still have planned it, or it is rightly never sent.
    starts_at = (begin + timedelta(seconds=46)).replace(microsecond=0)
    (tmp_path / "notifier.toml").write_text(config(receiver, starts_at, port))
    env = environment(tmp_path, database_url)
    daemon = None
    log: list[str] = []

    def arrived() -> str:
        """Which reminders came (distinct ids, by offset), and what the daemons said."""
        seen = {h.headers["webhook-id"]: h.verified["data"]["offset"] for h in receiver.hits}
        return f"{sorted(Counter(seen.values()).items())}\n" + "".join(log[-60:])

    try:
        daemon = await start_daemon(env, tmp_path, log=log)
        # Up to just after the first offset's instant, then killed hard.
        first = starts_at - timedelta(seconds=OFFSETS[0])
        await wait_for(lambda: datetime.now(UTC) > first + timedelta(seconds=1), 30)
        await wait_for(lambda: len(receiver.hits) >= READERS, 10)
        daemon.send_signal(signal.SIGKILL)
        await daemon.wait()
        # Down while the second offset's instant passes.
        second = starts_at - timedelta(seconds=OFFSETS[1])
        await wait_for(lambda: datetime.now(UTC) > second + timedelta(seconds=1), 30)
        daemon = await start_daemon(env, tmp_path, log=log)
        last = starts_at - timedelta(seconds=OFFSETS[-1])
        # Distinct ids: a reminder in flight at the kill may arrive twice (same id), and
        # must not count for one still to come.
        try:
            await wait_for(
                lambda: (
                    len({h.headers["webhook-id"] for h in receiver.hits}) >= READERS * len(OFFSETS)
                ),
                60,
            )
        except AssertionError:
            raise AssertionError("not every reminder came: " + arrived()) from None
        await asyncio.sleep(1.5)  # anything doubled would have arrived by now
        assert datetime.now(UTC) >= last
    finally:
        if daemon is not None and daemon.returncode is None:
            daemon.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(daemon.wait(), 30) == 0
        await receiver.stop()

    offsets = Counter()
    per_reader: dict[str, list[str]] = {}
    for hit in receiver.hits:
        assert hit.verified is not None
        data = hit.verified["data"]
        assert hit.verified["type"] == "meeting.reminder"
        offsets[data["offset"]] += 1
        per_reader.setdefault(hit.path, []).append(data["offset"])
    ids = Counter(h.headers["webhook-id"] for h in receiver.hits)
    # In-flight repeats are allowed only with the same webhook-id; here none were in flight
    # long enough to repeat, and no reminder went out twice under different ids.
    assert len(ids) == READERS * len(OFFSETS)
    assert all(sorted(set(v)) == sorted(f"{s}s" for s in OFFSETS) for v in per_reader.values())
    late = [h for h in receiver.hits if h.verified["data"].get("late")]
    assert {h.verified["data"]["offset"] for h in late} <= {f"{OFFSETS[1]}s"}
    code, out = await cli(env, tmp_path, "meetings", "show", "talks", "--json")
    assert code == 0, out


async def test_healthz_and_a_config_reload_that_is_refused_then_accepted(
    tmp_path: Path, database_url: str
) -> None:
    receiver = await Receiver(secrets=[SECRET]).start()
    port = free_port()
    starts_at = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    path = tmp_path / "notifier.toml"
    # Every timer within reach, so /healthz counts them all (the meeting is days ahead).
    path.write_text(config(receiver, starts_at, port, horizon="30d"))
    env = environment(tmp_path, database_url)
    daemon = await start_daemon(env, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            health = (await client.get("/healthz")).json()
            assert health["status"] == "ok"
            assert health["scheduler"]["running"] is True
            assert health["scheduler"]["timers"] == READERS * len(OFFSETS)

            # A broken edit: refused, the daemon keeps running on the last good config.
            path.write_text(
                path.read_text().replace('timezone = "Europe/Moscow"', 'timezone = "Mars/Olympus"')
            )
            daemon.send_signal(signal.SIGHUP)
            await asyncio.sleep(1.5)
            assert (await client.get("/healthz")).status_code == 200
            code, out = await cli(env, tmp_path, "check")
            assert code == 1
            assert "Mars/Olympus" in out

            # A good edit: one reader fewer, picked up from the file without a signal.
            text = config(receiver, starts_at, port, horizon="30d")
            cut = text.index('[[subscribers]]\nid = "reader-11"')
            path.write_text(text[:cut])
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                health = (await client.get("/healthz")).json()
                if health["scheduler"]["timers"] == (READERS - 1) * len(OFFSETS):
                    break
                await asyncio.sleep(0.3)
            assert health["scheduler"]["timers"] == (READERS - 1) * len(OFFSETS)
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(daemon.wait(), 30) == 0
        await receiver.stop()


async def test_a_status_push_over_http_reaches_a_real_receiver_and_mail_server(
    tmp_path: Path, database_url: str
) -> None:
    from tests.integration.peers import SmtpServer

    receiver = await Receiver(secrets=[SECRET]).start()
    smtp = SmtpServer().start()
    port = free_port()
    starts_at = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    (tmp_path / "notifier.toml").write_text(
        "\n".join(
            [
                f'listen = "127.0.0.1:{port}"',
                'api_tokens = ["t0ken"]',
                "[smtp]",
                f"port = {smtp.port}",
                "[webhooks]",
                'allow_cidrs = ["127.0.0.1/32"]',
                "[[meetings]]",
                'id = "talks"',
                'title = "Talks"',
                'timezone = "Europe/Moscow"',
                f'starts_at = "{starts_at.isoformat()}"',
                'status = "postponed"',
                "[[subscribers]]",
                'id = "wire"',
                f'webhook = {{ url = "{receiver.url("/wire")}", secrets = ["{SECRET}"] }}',
                "[[subscribers]]",
                'id = "press"',
                'email = "press@example.org"',
                'locale = "ru"',
            ]
        )
        + "\n"
    )
    env = environment(tmp_path, database_url)
    daemon = await start_daemon(env, tmp_path)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer t0ken"}
        ) as client:
            pushed = await client.post(
                "/v1/meetings/talks/status",
                json={"status": "cleared", "reason": "assessment negative", "event_id": "e-1"},
            )
            assert pushed.status_code == 202, pushed.text
            await wait_for(lambda: receiver.hits and smtp.box.to("press@example.org"), 15)
            again = await client.post(
                "/v1/meetings/talks/status", json={"status": "cleared", "event_id": "e-1"}
            )
            assert again.json()["duplicate"] is True
            await asyncio.sleep(1.5)
        (hit,) = receiver.hits
        assert hit.verified["type"] == "meeting.cleared"
        (mail,) = smtp.box.to("press@example.org")
        assert mail["Subject"].startswith("Препятствия устранены: Talks")
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(daemon.wait(), 30) == 0
        smtp.stop()
        await receiver.stop()
