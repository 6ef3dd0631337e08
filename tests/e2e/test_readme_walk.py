"""The README's walk, run as written: every fenced block marked ``<!-- walk: NAME -->`` is
taken from README.md and run by bash, command by command, against a fresh `notifier demo`
(its own process, on free ports), in a scratch folder. A command must exit 0, or 1 where
the README says "exit 1". What the demo's catcher and receiver print must show the alerts
arriving, and every webhook's signature checking.

`.venv/bin/notifier` is this interpreter's `-m notifier`, and the demo's addresses
(127.0.0.1:8080, :1025, :9000) are the free ports it was given: nothing else is changed.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT
from tests.integration.peers import free_port

README = ROOT / "README.md"
TALKS = "moscow-tskhinvali-talks"


def walk(name: str) -> list[str]:
    """The commands of the README block ``<!-- walk: name -->``, continuation lines joined,
    comments and blank lines dropped."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- walk: {name} -->\n```sh\n(.*?)\n```", text, re.DOTALL)
    assert found is not None, f"README.md has no walk block {name!r}"
    commands: list[str] = []
    pending = ""
    for line in found.group(1).splitlines():
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            commands.append(pending.strip())
        pending = ""
    return commands


def expected_code(command: str) -> int:
    return 1 if re.search(r"#.*exit 1\b", command) else 0


class Demo:
    """`notifier demo` as a process in `folder`, on free ports, its output kept."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port, self.smtp, self.hooks = free_port(), free_port(), free_port()
        self.out = folder / "demo.out"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folder),
            "LANG": "C.UTF-8",
        }

    def start(self) -> None:
        args = [
            sys.executable,
            "-m",
            "notifier",
            "demo",
            "--config",
            str(ROOT / "config" / "notifier.toml"),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--smtp-port",
            str(self.smtp),
            "--webhook-port",
            str(self.hooks),
        ]
        self.log = self.out.open("w")
        self.process = subprocess.Popen(
            args, cwd=self.folder, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.said()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail("the demo did not start:\n" + self.said())

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = -9
        self.log.close()
        return code

    def said(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, text: str, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while text not in self.said():
            if time.monotonic() > deadline:
                pytest.fail(f"the demo never printed {text!r}:\n{self.said()[-4000:]}")
            time.sleep(0.2)

    def script(self, commands: list[str]) -> str:
        """The commands as one bash script that stops at the first unexpected exit code."""
        notifier = f"{shlex.quote(sys.executable)} -m notifier"
        lines = ["set -u"]
        for command in commands:
            runnable = command.replace(".venv/bin/notifier", notifier)
            runnable = runnable.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
            want = expected_code(command)
            lines.append(f"echo {shlex.quote('$ ' + command)}")
            lines.append(runnable)
            lines.append(
                f'rc=$?; if [ "$rc" -ne {want} ]; then echo "exit $rc, not {want}: "'
                f"{shlex.quote(command)}; exit 99; fi"
            )
        return "\n".join(lines) + "\n"

    def run(self, commands: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", self.script(commands)],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )


def test_the_readme_walks_run_as_written_against_the_demo_and_its_reset(
    tmp_path: Path,
) -> None:
    """The command-line walk on one demo; then a new demo in the same folder, which has
    forgotten it (the talks postponed again, next week at 19:00 Moscow time), takes the
    curl walk."""
    first = Demo(tmp_path)
    first.start()
    try:
        commands = walk("cli")
        assert any("rescheduled" in c for c in commands)
        done = first.run(commands)
        assert done.returncode == 0, done.stdout + done.stderr
        # The press desk's Russian email of the reschedule, printed by the demo's catcher.
        first.wait_for("email to press@example.org: Перенесена")
        first.wait_for("meeting.rescheduled moscow-tskhinvali-talks -> rescheduled (signature ok")
        first.wait_for("chat /chat:")
        first.wait_for("meeting.cancelled moscow-tskhinvali-talks -> cancelled (signature ok")
        assert "SIGNATURE INVALID" not in first.said()
        # The reschedule went to 21:00 on the demo's day, in Moscow: a week from today.
        assert "T21:00:00+03:00" in done.stdout
    finally:
        assert first.stop() == 0, first.said()[-4000:]

    again = Demo(tmp_path)
    again.start()
    try:
        base = f"http://127.0.0.1:{again.port}"
        assert "badge-postponed" in httpx.get(f"{base}/meetings/{TALKS}?lang=en").text
        assert "19:00 MSK" in httpx.get(f"{base}/?lang=en").text
        config = (tmp_path / "var" / "demo.toml").read_text(encoding="utf-8")
        assert "2026-03-02" not in config
        done = again.run(walk("curl"))
        assert done.returncode == 0, done.stdout + done.stderr
        assert '"status":"rescheduled"' in done.stdout.replace(" ", "")
        assert "409" in done.stdout  # concluded straight from rescheduled is refused
        assert "notifier_" in done.stdout  # the metrics
        again.wait_for("meeting.rescheduled moscow-tskhinvali-talks -> rescheduled (signature ok")
        assert "SIGNATURE INVALID" not in again.said()
    finally:
        assert again.stop() == 0, again.said()[-4000:]
