"""The files that ship notifier agree with each other: Dockerfile, README, Makefile, CI."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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
    commands = [
        re.sub(r"\s+--no-cache-dir", "", line.removeprefix("RUN ")).strip() for line in installs
    ]
    for command in commands:
        assert command in readme, f"README does not show the Dockerfile's install step {command!r}"
    # The locked versions first, then the package alone: nothing is resolved afresh.
    assert commands == ["pip install -r requirements-runtime.lock", "pip install --no-deps ."]
    assert (
        ".venv/bin/pip install -r requirements-runtime.lock\n.venv/bin/pip install --no-deps ."
        in readme
    )


def test_make_install_and_the_readme_install_from_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "$(BIN)/pip install --quiet -r requirements.lock" in makefile
    assert "$(BIN)/pip install --quiet --no-deps -e ." in makefile
    assert "$(BIN)/notifier: pyproject.toml requirements.lock" in makefile
    assert "pip install -e '.[test,dev]'" not in makefile
    assert (
        "`.venv/bin/pip install -r requirements.lock` then `.venv/bin/pip install --no-deps -e .`"
        in readme
    )


def test_the_health_check_asks_where_the_settings_say_the_daemon_listens() -> None:
    (check,) = [line for line in dockerfile() if line.startswith("HEALTHCHECK ")]
    assert re.search(r'CMD \["notifier", "health"', check), check
    # No address or port of its own: it follows NOTIFIER_LISTEN / listen.
    assert not re.search(r"\d+\.\d+\.\d+\.\d+|localhost|:\d{2,5}\b", check), check


def _locked(name: str) -> dict[str, str]:
    """Each package pinned in the lock file `name`, by normalised name, and its version."""
    text = (ROOT / name).read_text(encoding="utf-8")
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", text, re.MULTILINE)
    return {canonicalize_name(package): version for package, version in pins}


def _stale(requirements: list[str], locked: dict[str, str]) -> list[str]:
    found = []
    for line in requirements:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name not in locked:
            found.append(f"{requirement.name} is not in the lock")
        elif not requirement.specifier.contains(locked[name], prereleases=True):
            found.append(f"{requirement.name}=={locked[name]} does not satisfy {requirement}")
    return found


def test_the_locks_are_current_with_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = project["dependencies"]
    extras = project["optional-dependencies"]
    full = _locked("requirements.lock")
    stale = _stale(runtime + extras["test"] + extras["dev"], full)
    stale += [f"runtime lock: {p}" for p in _stale(runtime, _locked("requirements-runtime.lock"))]
    assert not stale, "run `make lock`: " + "; ".join(stale)
    # The image runs the versions the tests ran with.
    for package, version in _locked("requirements-runtime.lock").items():
        assert full.get(package) == version, (
            f"{package}: {version} in the image, {full.get(package)} in tests"
        )
    for name in ("requirements.lock", "requirements-runtime.lock"):
        assert "--hash=sha256:" in (ROOT / name).read_text(encoding="utf-8")


def test_a_stale_lock_is_named_by_its_package() -> None:
    locked = {"fastapi": "0.100.0", "httpx": "0.28.1"}
    assert _stale(["fastapi>=0.110", "httpx>=0.27", "typer>=0.12"], locked) == [
        "fastapi==0.100.0 does not satisfy fastapi>=0.110",
        "typer is not in the lock",
    ]


def test_the_build_backend_can_read_the_license_as_written() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    # `license = "MIT"` (an SPDX expression, PEP 639) is read by setuptools 77 and later;
    # an older one refuses to build the package.
    assert isinstance(pyproject["project"]["license"], str)
    (setuptools,) = [
        Requirement(r) for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")
    ]
    lowest = min(
        (Version(s.version) for s in setuptools.specifier if s.operator in (">=", "==", "~=")),
        default=None,
    )
    assert lowest is not None, str(setuptools)
    assert lowest >= Version("77"), str(setuptools)
    assert not setuptools.specifier.contains("76.1")


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
        # Links in mail lead where readers can go: a public URL to set, with a default
        # that is a port this file publishes (not the container's own 127.0.0.1:8080).
        public = re.fullmatch(
            r"\$\{NOTIFIER_PUBLIC_URL:-(https?://[^}]+)\}", env["NOTIFIER_PUBLIC_URL"]
        )
        assert public, env["NOTIFIER_PUBLIC_URL"]
        published = {p.split(":")[0] for s in services.values() for p in s.get("ports", [])}
        assert re.fullmatch(r"http://localhost:(\d+)", public.group(1))
        assert public.group(1).rsplit(":", 1)[1] in published
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
