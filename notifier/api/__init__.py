"""The HTTP interface (FastAPI). Routes hold no business logic; they call the service."""

from __future__ import annotations
