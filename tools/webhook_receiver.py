"""A local webhook receiver for trying notifier out: prints what arrives, checks signatures.

    .venv/bin/python tools/webhook_receiver.py --port 9000 \\
        --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw

Listens on 127.0.0.1 only. Answers 204 to a correctly signed request, 401 otherwise.
Under ``/chat`` it stands in for a chat service instead: what Apprise's ``json://`` posts
there (title and message) is printed and answered 204, unsigned.
"""

from __future__ import annotations

import argparse
import json
import time

from aiohttp import web

from notifier.channels.webhook import verify


def make_app(secrets: list[str], tolerance: int = 300) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if request.path.startswith("/chat"):
            try:
                said = json.loads(body)
                print(
                    f"{request.path} chat: {said.get('title')}\n{said.get('message')}", flush=True
                )
            except ValueError:
                print(f"{request.path} chat: {len(body)} bytes, not JSON", flush=True)
            return web.Response(status=204)
        msg_id = request.headers.get("webhook-id", "")
        valid = verify(secrets, request.headers, body, now=time.time(), tolerance=tolerance)
        try:
            event = json.loads(body)
            summary = f"{event.get('type')} {event.get('data', {}).get('meeting', {}).get('id')}"
        except ValueError:
            summary = f"{len(body)} bytes, not JSON"
        print(f"{request.path} {msg_id} {summary} signature={'ok' if valid else 'BAD'}", flush=True)
        return web.Response(status=204 if valid else 401)

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", action="append", default=[], help="whsec_... (repeatable)")
    args = parser.parse_args()
    web.run_app(make_app(args.secret), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
