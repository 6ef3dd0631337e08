"""Channels send one rendered message and raise a temporary or permanent delivery error.

They decide nothing about retries: that is the outbox worker's job, with the retry policy.
"""

from __future__ import annotations
