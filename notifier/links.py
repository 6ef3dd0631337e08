"""Every link notifier puts in a message or a page, built in one place.

A link is the public URL (``public_url``) and a path; the ones that act for a reader carry
a token signed with the installation's link key (`notifier.tokens`): the one-click
unsubscribe link is bound to the address it was sent to, the manage page and the private
calendar to the reader's link salt (``notifier subscribers rotate-links`` changes it).
"""

from __future__ import annotations

from dataclasses import dataclass

from notifier.domain.outbox import Channel
from notifier.tokens import link_token, unsubscribe_token


@dataclass(frozen=True)
class Links:
    """The links of one installation: its public URL and its link key."""

    base_url: str
    key: str

    def url(self, path: str) -> str:
        """`path` (starting with ``/``) under the public URL."""
        return f"{self.base_url.rstrip('/')}{path}"

    def meeting(self, meeting_id: str) -> str:
        """A meeting's public page."""
        return self.url(f"/meetings/{meeting_id}")

    def unsubscribe(self, subscriber_id: str, channel: Channel, address: str) -> str:
        """The one-click unsubscribe link of one reader's channel, bound to `address`."""
        return self.unsubscribe_page(
            unsubscribe_token(self.key, subscriber_id, channel.value, address)
        )

    def unsubscribe_page(self, token: str) -> str:
        """The unsubscribe page (and one-click POST target) of an unsubscribe token."""
        return self.url(f"/unsubscribe/{token}")

    def unsubscribe_button(self, token: str) -> str:
        """Where the unsubscribe page's button posts (answered with a page, not JSON)."""
        return self.url(f"/unsubscribe/{token}/page")

    def manage(self, subscriber_id: str, salt: str) -> str:
        """A self-service reader's manage page: change what they hear, or leave."""
        return self.manage_page(link_token(self.key, "manage", subscriber_id, salt))

    def manage_page(self, token: str) -> str:
        """The manage page of a manage token."""
        return self.url(f"/manage/{token}")

    def calendar(self, subscriber_id: str, salt: str) -> str:
        """The reader's private calendar feed: their meetings in their audience's view."""
        return self.calendar_feed(link_token(self.key, "calendar", subscriber_id, salt))

    def calendar_feed(self, token: str) -> str:
        """The private calendar feed of a calendar token."""
        return self.url(f"/calendar/{token}.ics")

    def confirm(self, token: str) -> str:
        """The page that confirms a subscription (double opt-in)."""
        return self.url(f"/subscribe/confirm/{token}")
