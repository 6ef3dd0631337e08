"""Receivers for the benchmarks, run as separate processes so they do not share a core
with the sender: a webhook receiver answering 204, and an SMTP sink."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiohttp import web


def webhook(port: int) -> None:
    """Answers 200 to every POST and keeps count: distinct webhook-ids, and when each change
    (meeting id, sequence) arrived, for the latency benchmark (GET /_stats, /_arrivals)."""
    ids: set[str] = set()
    arrivals: dict[str, float] = {}
    hits = 0

    async def ok(request: web.Request) -> web.Response:
        nonlocal hits
        body = await request.read()
        arrived = time.time()
        hits += 1
        ids.add(request.headers.get("webhook-id", ""))
        if request.path.startswith("/lat/"):
            data = json.loads(body)["data"]
            arrivals.setdefault(f"{data['meeting']['id']}/{data['sequence']}", arrived)
        return web.Response(status=200)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"ids": len(ids), "hits": hits})

    async def timings(request: web.Request) -> web.Response:
        return web.json_response(arrivals)

    async def reset(request: web.Request) -> web.Response:
        nonlocal hits
        ids.clear()
        arrivals.clear()
        hits = 0
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/_stats", stats)
    app.router.add_get("/_arrivals", timings)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/{tail:.*}", ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def smtp(port: int) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["webhook", "smtp"])
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    (webhook if args.kind == "webhook" else smtp)(args.port)
