"""What the daemon imports off the loop at start (`HTTP_SIDE`) covers every module
`http_server` imports when it runs: one missed (renamed, or removed as unused by a linter
once before) puts ~0.2 s of imports back on the loop (tests/e2e/test_loop_debug.py)."""

from __future__ import annotations

import ast
import importlib
import inspect

from notifier import daemon


def test_every_import_of_http_server_is_made_off_the_loop_first() -> None:
    tree = ast.parse(inspect.getsource(daemon.http_server).lstrip())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported
    assert imported <= set(daemon.HTTP_SIDE)
    for name in daemon.HTTP_SIDE:
        importlib.import_module(name)
