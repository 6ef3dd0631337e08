"""Pure domain logic: models, the state machine, matching, reminder instants, durations.

Nothing here does I/O or reads a clock; `now` is always a parameter. Nothing here imports
from the rest of the package.
"""

from __future__ import annotations
