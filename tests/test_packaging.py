"""The files that ship notifier agree with each other: Dockerfile, README, Makefile, CI."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dockerfile() -> list[str]:
    # Join continuation lines so each instruction is one string.
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_every_file_the_dockerfile_copies_exists() -> None:
    copies = [line.split()[1:-1] for line in dockerfile() if line.startswith("COPY ")]
    assert copies, "the Dockerfile copies nothing"
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"


def test_the_dockerfile_installs_as_the_readme_says() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    installs = [line for line in dockerfile() if line.startswith("RUN pip install")]
    assert installs
    for line in installs:
        command = re.sub(r"\s+--no-cache-dir", "", line.removeprefix("RUN ")).strip()
        assert command in readme, f"README does not show the Dockerfile's install step {command!r}"


def test_the_dockerfile_runs_the_daemon_as_a_non_root_user() -> None:
    lines = dockerfile()
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    assert 'ENTRYPOINT ["notifier"]' in lines
    assert 'CMD ["run"]' in lines


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in readme
    assert re.search(r"^make test$", ci, re.MULTILINE)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for tool in ("ruff check", "mypy", "pytest"):
        assert tool in makefile


def test_the_console_script_and_package_data_are_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["notifier"] == "notifier.cli:main"
    assert (ROOT / "notifier" / "__main__.py").exists()
    assert (ROOT / "notifier" / "store" / "migrations" / "env.py").exists()


def test_the_compose_example_runs_migrations_once_then_replicas_of_this_image() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    replicas = [s for name, s in services.items() if name.startswith("notifier-")]
    assert len(replicas) >= 2
    for replica in replicas:
        assert replica["build"] == "."
        assert replica["command"] == ["run"]
        assert replica["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        env = replica["environment"]
        assert env["NOTIFIER_DATABASE_URL"].startswith("postgresql+asyncpg://")
        for volume in replica["volumes"]:
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), f"compose mounts {source}, which does not exist"
    # Every NOTIFIER_* variable the example sets is a real setting.
    from notifier.settings import Settings

    for name in replicas[0]["environment"]:
        if name == "NOTIFIER_CONFIG":
            continue
        key = name.removeprefix("NOTIFIER_").lower()
        assert key in Settings.model_fields, f"{name} is not a setting"
    assert (ROOT / "docs" / "operations.md").exists()
