"""The storage port's contract: one module per aggregate of `notifier.store.port`, each test
run on every backend (the `store` fixture of tests/conftest.py: SQLite and PostgreSQL)."""
