"""One-click unsubscribe: signed links, no bearer token; GET confirms, POST acts."""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

from notifier.api.context import ApiContext, Ctx
from notifier.api.docs import problem_response
from notifier.api.models import Unsubscribed
from notifier.domain.outbox import Channel
from notifier.tokens import read_unsubscribe_token

router = APIRouter(tags=["unsubscribe"])


async def unsubscribe_subject(ctx: ApiContext, token: str) -> tuple[str, Channel]:
    """The subscriber and channel a link names, if it is valid for their current
    address; else 404 (tampered, or sent to an address since changed)."""
    read = read_unsubscribe_token(ctx.unsubscribe_key, token)
    if read is None or read.channel not in {c.value for c in Channel}:
        raise HTTPException(404, "this unsubscribe link is not valid")
    channel = Channel(read.channel)
    async with ctx.store.read() as tx:
        address = await tx.endpoint_address(read.subscriber_id, channel)
    if not read.sent_to(address):
        raise HTTPException(
            404,
            "this unsubscribe link was sent to an address that no longer receives "
            "these notifications",
        )
    return read.subscriber_id, channel


@router.get(
    "/unsubscribe/{token}",
    responses={404: problem_response("Not a valid link")},
    response_class=HTMLResponse,
    summary="Confirm unsubscribing (never unsubscribes by itself)",
)
async def unsubscribe_page(token: str, ctx: Ctx) -> HTMLResponse:
    # A GET only shows the form: mail scanners and link previews fetch every link, and
    # must not unsubscribe anyone (RFC 8058 one-click is the POST).
    subscriber_id, channel = await unsubscribe_subject(ctx, token)
    action = f"{str(ctx.settings.public_url).rstrip('/')}/unsubscribe/{token}"
    return HTMLResponse(
        "<!doctype html><html><body style='font-family:sans-serif'>"
        f"<p>Stop {channel.value} notifications to <b>{html.escape(subscriber_id)}</b>?</p>"
        f"<form method='post' action='{html.escape(action, quote=True)}'>"
        "<input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<button type='submit'>Unsubscribe</button></form></body></html>"
    )


@router.post(
    "/unsubscribe/{token}",
    responses={404: problem_response("Not a valid link")},
    summary="Unsubscribe at once (RFC 8058 one-click)",
)
async def unsubscribe(token: str, ctx: Ctx) -> Unsubscribed:
    subscriber_id, channel = await unsubscribe_subject(ctx, token)
    async with ctx.store.write() as tx:
        await tx.disable_endpoint(subscriber_id, channel, reason="unsubscribed", now=ctx.clock())
    return Unsubscribed(unsubscribed=subscriber_id, channel=channel.value)
