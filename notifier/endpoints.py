"""Where a subscriber's endpoints may send: the one policy, for the config file and the API.

A subscriber names a webhook URL and Apprise (chat) URLs; each must be of an allowed kind and
must not point inside our network (`notifier.domain.addresses`). The rule is written once,
here, and judged two ways:

- `literal_refusals`, when the config file is read (no network: an IP literal or
  ``localhost`` outside the allow list is refused, a name is judged when connecting);
- `refusals`, when the API saves a subscriber: the same, and a name that resolves only to
  refused addresses, or not at all, is refused then rather than at the first send.

Each refusal names the field it is about (``webhook.url``, ``notify[0]``) and never repeats
an Apprise URL, which holds the service's token. Sending checks again whatever was accepted
(`notifier.egress`): a name can change its addresses after it was saved.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from notifier.channels.chat import USER_HOSTED, host_problem, scheme_of, url_problem
from notifier.domain.addresses import Network, host_allowed
from notifier.egress import check_url

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class EndpointPolicy:
    """What the installation allows: the networks a webhook or user-hosted chat service may
    reach besides the public Internet (``webhooks.allow_cidrs``) and the Apprise schemes
    subscribers may use (``notify.schemes``)."""

    allow: tuple[Network, ...]
    schemes: tuple[str, ...]


@dataclass(frozen=True)
class Refusal:
    """One endpoint the policy refuses: where it is in the subscriber, and why."""

    loc: Loc  # ("webhook", "url") or ("notify", n)
    message: str

    @property
    def field(self) -> str:
        """The field as a reader writes it: ``webhook.url``, ``notify[0]``."""
        head, tail = self.loc
        return f"{head}[{tail}]" if isinstance(tail, int) else f"{head}.{tail}"


def _endpoints(webhook: str | None, notify: Sequence[str]) -> Iterator[tuple[Loc, str]]:
    if webhook is not None:
        yield ("webhook", "url"), webhook
    for number, url in enumerate(notify):
        yield ("notify", number), url


def literal_refusals(
    webhook: str | None, notify: Sequence[str], policy: EndpointPolicy
) -> list[Refusal]:
    """What the policy refuses without asking the network (the config file's check)."""
    found: list[Refusal] = []
    for loc, url in _endpoints(webhook, notify):
        if loc[0] == "webhook":
            host = urlsplit(url).hostname or ""
            if host_allowed(host, policy.allow) is False:
                found.append(
                    Refusal(
                        loc,
                        f"webhook target {host} is a private, loopback or link-local address; "
                        "list it in webhooks.allow_cidrs to allow it",
                    )
                )
            continue
        problem = url_problem(url, policy.schemes)
        if problem is None and scheme_of(url) in USER_HOSTED:
            host = urlsplit(url.replace(f"{scheme_of(url)}://", "http://", 1)).hostname or ""
            if host and host_allowed(host, policy.allow) is False:
                problem = (
                    f"host {host} is a private, loopback or link-local address; list it "
                    "in webhooks.allow_cidrs to allow it"
                )
        if problem is not None:
            found.append(Refusal(loc, problem))
    return found


async def refusals(
    webhook: str | None, notify: Sequence[str], policy: EndpointPolicy
) -> list[Refusal]:
    """What the policy refuses once names are resolved (the API's check when saving)."""
    found: list[Refusal] = []
    for loc, url in _endpoints(webhook, notify):
        if loc[0] == "webhook":
            problem = await check_url(url, policy.allow, what="webhook.url")
            if problem is not None:
                found.append(Refusal(loc, problem))
            continue
        problem = url_problem(url, policy.schemes) or await host_problem(url, policy.allow)
        if problem is not None:
            found.append(Refusal(loc, f"notify[{loc[1]}]: {problem}"))
    return found
