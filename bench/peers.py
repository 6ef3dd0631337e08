"""Receivers for the benchmarks, run as separate processes so they do not share a core
with the sender: a webhook receiver answering 204, and an SMTP sink."""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web


def webhook(port: int) -> None:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
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
