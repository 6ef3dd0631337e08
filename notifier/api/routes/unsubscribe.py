"""One-click unsubscribe (RFC 8058): a mail client POSTs to the signed link, no bearer
token, and gets a short answer. The page the link opens in a browser is the public face's
(`notifier.public.pages.unsubscribe_page`)."""

from __future__ import annotations

from fastapi import APIRouter

from notifier import service
from notifier.api.docs import problem_response
from notifier.api.models import Unsubscribed
from notifier.web.context import Ctx

router = APIRouter(tags=["unsubscribe"])


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
