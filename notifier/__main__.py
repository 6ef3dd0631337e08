"""`python -m notifier` is the same as the `notifier` console script."""

from __future__ import annotations

from notifier.cli import main

if __name__ == "__main__":
    main()
