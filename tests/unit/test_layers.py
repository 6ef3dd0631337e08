"""The layers of notifier, read from the imports of its source (nothing is imported here).

Top down: the composition (`web.app`, `daemon`, `cli`, `compose`) -> the faces `api` and
`public`, siblings that never import each other -> `web.context`, what both are given ->
`service`, where every rule lives -> the store, channels, rendering -> `domain`, pure, which
imports nothing of ours. A face reaches storage only through the service: `api/`,
`public/` and `cli.py` import `notifier.store` only for types (under ``TYPE_CHECKING``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "notifier"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports (a notifier module, or module.name)
    line: int
    typing_only: bool  # under `if TYPE_CHECKING:`


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _typing_block(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> list[Import]:
    name = module_name(path)
    found: list[Import] = []

    def walk(node: ast.AST, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _typing_block(child):
                for part in child.body:
                    walk_one(part, True)
                for part in child.orelse:
                    walk_one(part, typing_only)
                continue
            walk_one(child, typing_only)

    def walk_one(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(name, alias.name, node.lineno, typing_only))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                found.append(Import(name, f"{node.module}.{alias.name}", node.lineno, typing_only))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "module"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "lazy"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):  # notifier.lazy.module("notifier.x"): an import all the same, deferred
            found.append(Import(name, node.args[0].value, node.lineno, typing_only))
        walk(node, typing_only)

    walk(ast.parse(path.read_text(encoding="utf-8")), False)
    return [i for i in found if i.target == "notifier" or i.target.startswith("notifier.")]


ALL = [i for path in sorted(PACKAGE.rglob("*.py")) for i in imports_of(path)]


def under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def offending(importers: tuple[str, ...], targets: tuple[str, ...], *, types_ok: bool) -> list[str]:
    return [
        f"{i.module}:{i.line} imports {i.target}"
        for i in ALL
        if under(i.module, *importers)
        and under(i.target, *targets)
        and not (types_ok and i.typing_only)
    ]


def test_the_walk_sees_the_imports_it_must_judge() -> None:
    # A walk that found nothing would pass every rule below.
    assert any(i.module == "notifier.cli" and i.target == "notifier.service" for i in ALL)
    assert any(i.module == "notifier.web.app" and under(i.target, "notifier.public") for i in ALL)
    assert any(i.typing_only for i in ALL)


def test_the_domain_imports_nothing_of_ours() -> None:
    outside = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in ALL
        if under(i.module, "notifier.domain") and not under(i.target, "notifier.domain")
    ]
    assert outside == []


@pytest.mark.parametrize("face", ["notifier.api", "notifier.public", "notifier.cli"])
def test_faces_reach_storage_only_through_the_service(face: str) -> None:
    assert offending((face,), ("notifier.store",), types_ok=True) == []


def test_api_and_public_are_siblings_that_never_import_each_other() -> None:
    assert offending(("notifier.api",), ("notifier.public",), types_ok=False) == []
    assert offending(("notifier.public",), ("notifier.api",), types_ok=False) == []
    # Of the web package they use the context only; the app composes them.
    assert (
        offending(("notifier.api", "notifier.public"), ("notifier.web.app",), types_ok=False) == []
    )


def test_the_service_never_imports_a_face_or_the_composition() -> None:
    faces = ("notifier.api", "notifier.public", "notifier.web", "notifier.cli", "notifier.daemon")
    assert offending(("notifier.service",), faces, types_ok=False) == []


def test_the_store_never_imports_the_service_or_a_face() -> None:
    above = ("notifier.service", "notifier.api", "notifier.public", "notifier.web", "notifier.cli")
    assert offending(("notifier.store",), above, types_ok=False) == []


def test_the_port_imports_no_adapter() -> None:
    # The port states the contract; the SQLAlchemy adapter checks itself against it
    # (store/queries.py: _implements). Of the store, the port speaks only in its records.
    adapters = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in ALL
        if i.module == "notifier.store.port"
        and under(i.target, "notifier.store")
        and not under(i.target, "notifier.store.records")
    ]
    assert adapters == []


def test_no_import_cycle_hides_in_the_domain_under_type_checking() -> None:
    # An import kept under TYPE_CHECKING is a cycle the runtime does not see (audiences and
    # models were one: the views of a meeting now sit above both, in domain/views.py).
    hidden = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in ALL
        if under(i.module, "notifier.domain") and i.typing_only
    ]
    assert hidden == []


def test_a_transaction_carries_no_settings() -> None:
    """The audiences, the fan-out chunk and the installation id are the service's to plan
    with (`StorePort.planning`), not state of a database transaction."""
    from notifier.store.port import StorePort, TransactionPort
    from notifier.store.queries import Transaction

    settings = ("audiences", "fanout_chunk", "installation")
    for cls in (TransactionPort, Transaction):
        carried = [name for name in settings if name in _attributes(cls)]
        assert not carried, f"{cls.__name__} carries {carried}"
    assert "planning" in _attributes(StorePort)


def _attributes(cls: type) -> set[str]:
    """Every name a class or its bases define, annotate or set in `__init__`."""
    import inspect

    names: set[str] = set()
    for base in cls.__mro__:
        names |= set(vars(base)) | set(getattr(base, "__annotations__", {}))
        init = vars(base).get("__init__")
        if init is not None and inspect.isfunction(init):
            names |= {n for n in init.__code__.co_names}
    return names
