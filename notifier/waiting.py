"""Waiting for the first of several events, or a timeout, without leaving a task behind.

The idiom ``asyncio.wait([ensure_future(a.wait()), ensure_future(b.wait())], timeout=t)``
leaves the waiters that did not finish pending for ever unless each is cancelled: a loop
that polls every second then keeps one more task a second alive (the fan-out expander
grew ~80 MB a day that way). Every loop of the daemon waits through `wait_any`.
"""

from __future__ import annotations

import asyncio


async def wait_any(
    *events: asyncio.Event,
    timeout: float | None,  # noqa: ASYNC109 - a poll interval, not a deadline on the caller
) -> bool:
    """Wait until one of `events` is set or `timeout` seconds pass (``None``: no limit).

    Returns whether an event is set. No task started here outlives the call, whether it
    returns, times out or is cancelled.
    """
    if any(event.is_set() for event in events):
        return True
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        # Let the cancellations run, so nothing is left pending when the caller moves on.
        await asyncio.gather(*waiters, return_exceptions=True)
    return any(event.is_set() for event in events)
