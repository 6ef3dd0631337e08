"""One-click unsubscribe: signed links, no bearer token; GET confirms, POST acts."""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from notifier import service
from notifier.api.docs import problem_response
from notifier.api.models import Unsubscribed
from notifier.web.context import Ctx

router = APIRouter(tags=["unsubscribe"])


@router.get(
    "/unsubscribe/{token}",
    responses={404: problem_response("Not a valid link")},
    response_class=HTMLResponse,
    summary="Confirm unsubscribing (never unsubscribes by itself)",
)
async def unsubscribe_page(token: str, ctx: Ctx) -> HTMLResponse:
    # A GET only shows the form: mail scanners and link previews fetch every link, and
    # must not unsubscribe anyone (RFC 8058 one-click is the POST).
    subscriber_id, channel = await service.unsubscribe_subject(ctx.store, ctx.link_key, token)
    action = ctx.links.unsubscribe_page(token)
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
    subscriber_id, channel = await service.unsubscribe(
        ctx.store, ctx.link_key, token, now=ctx.clock()
    )
    return Unsubscribed(unsubscribed=subscriber_id, channel=channel.value)
