"""Watched sources: feeds the daemon polls for status changes.

`feed.py` decides, purely, what a feed item means for the store (a new meeting, a status
change, a details update) with a deterministic event id, so reading the same feed twice
sends nothing twice. `ics.py` and `jsonfeed.py` parse the two formats into feed items;
`poller.py` fetches them (conditional GET, backoff on failure) and applies the result.
"""

from __future__ import annotations
