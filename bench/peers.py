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
    first: float | None = None

    async def ok(request: web.Request) -> web.Response:
        nonlocal hits, first
        body = await request.read()
        arrived = time.time()
        hits += 1
        if first is None:
            first = arrived
        ids.add(request.headers.get("webhook-id", ""))
        if request.path.startswith("/lat/"):
            data = json.loads(body)["data"]
            arrivals.setdefault(f"{data['meeting']['id']}/{data['sequence']}", arrived)
        return web.Response(status=200)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"ids": len(ids), "hits": hits, "first": first})

    async def timings(request: web.Request) -> web.Response:
        return web.json_response(arrivals)

    async def reset(request: web.Request) -> web.Response:
        nonlocal hits, first
        ids.clear()
        arrivals.clear()
        hits = 0
        first = None
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/_stats", stats)
    app.router.add_get("/_arrivals", timings)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/{tail:.*}", ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def smtp(port: int, stats_port: int | None = None) -> None:
    """An SMTP sink; with `stats_port`, an HTTP server there answers GET /_stats with the
    distinct Message-IDs received and when the first came (POST /_reset clears them)."""
    from aiosmtpd.controller import Controller

    ids: set[bytes] = set()
    first: list[float] = []

    class Counting:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            content = getattr(envelope, "original_content", None) or b""
            if not first:
                first.append(time.time())
            start = content.find(b"\nMessage-ID:")
            ids.add(content[start : content.find(b"\n", start + 1)] if start >= 0 else content)
            return "250 OK"

    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()

    async def serve() -> None:
        if stats_port is None:
            await asyncio.Event().wait()

        async def stats(request: web.Request) -> web.Response:
            return web.json_response({"ids": len(ids), "first": first[0] if first else None})

        async def reset(request: web.Request) -> web.Response:
            ids.clear()
            first.clear()
            return web.Response(status=204)

        app = web.Application()
        app.router.add_get("/_stats", stats)
        app.router.add_post("/_reset", reset)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", stats_port).start()
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    finally:
        controller.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["webhook", "smtp"])
    parser.add_argument("port", type=int)
    parser.add_argument("stats_port", type=int, nargs="?")
    args = parser.parse_args()
    if args.kind == "webhook":
        webhook(args.port)
    else:
        smtp(args.port, args.stats_port)
