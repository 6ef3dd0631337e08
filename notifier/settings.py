"""Settings and the config file, read through pydantic-settings.

Precedence, highest first: ``NOTIFIER_*`` environment variables (``__`` nests:
``NOTIFIER_SMTP__PORT=2525``; a list of plain values comma-separated or as JSON:
``NOTIFIER_API_TOKENS=t1,t2``; a table or a list of tables as JSON only), then ``.env``
in the working directory, then the TOML file named by ``--config`` / ``NOTIFIER_CONFIG`` (default
``config/notifier.toml``). Unknown keys are errors. Secrets are `SecretStr` and never
printed. Relative paths are relative to the working directory.

`load_settings` is the one entry point; it turns every problem into a `ConfigError` that
names the file, line and field (one line per problem when there are several).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import types
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parseaddr
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from notifier import mail
from notifier.channels.chat import DEFAULT_SCHEMES
from notifier.configfile import (
    MeetingConfig,
    SourceConfig,
    SubscriberConfig,
)
from notifier.domain.addresses import host_allowed, is_loopback_host
from notifier.domain.audiences import DEFAULT_AUDIENCES, Audiences
from notifier.domain.durations import format_duration
from notifier.domain.errors import ConfigError
from notifier.domain.languages import Languages
from notifier.domain.mailbox import read_mailbox_url
from notifier.domain.retry import DEFAULT_SCHEDULE
from notifier.domain.text import check_text
from notifier.endpoints import EndpointPolicy, literal_refusals
from notifier.fields import (
    AllowRange,
    AudienceName,
    Duration,
    Retention,
    Slug,
    WebhookSecret,
    did_you_mean,
)
from notifier.locate import format_loc, locate
from notifier.mailsign import DkimKeyError, DkimSigner, check_name, read_key
from notifier.tokens import BOUNCE_TOKEN_LENGTH

DEFAULT_CONFIG = Path("config/notifier.toml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DkimSettings(_Strict):
    """DKIM signing of every email (RFC 6376): mail clients offer one-click unsubscribe
    only when a valid signature covers List-Unsubscribe (RFC 8058)."""

    #: The signing domain (``d=``): smtp.sender's domain or a parent of it, so DMARC aligns.
    domain: str
    #: The selector (``s=``): the key's public half is published at
    #: ``SELECTOR._domainkey.DOMAIN`` (`notifier dkim dns` prints the record).
    selector: str
    #: An RSA private key in PEM, 1024 bits or more (2048 advised), readable by the daemon.
    key_file: Path

    @field_validator("domain", "selector")
    @classmethod
    def _a_dns_name(cls, value: str, info: ValidationInfo) -> str:
        try:
            return check_name(value, what=str(info.field_name))
        except ValueError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("key_file")
    @classmethod
    def _a_readable_key(cls, value: Path) -> Path:
        try:
            read_key(value)
        except DkimKeyError as exc:
            raise ValueError(str(exc)) from None
        return value

    def signer(self) -> DkimSigner:
        """The signer of these settings (the key read again, as it is now)."""
        return DkimSigner.from_file(
            domain=self.domain, selector=self.selector, key_file=self.key_file
        )


class SmtpSettings(_Strict):
    """Where email goes out."""

    host: str = "127.0.0.1"
    port: int = Field(default=1025, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "Notifier <notifier@localhost>"
    timeout: Duration = timedelta(seconds=30)
    #: Send the password over a connection that is not encrypted (security = "none").
    #: Off: a password with no TLS is refused, since anyone on the path can read it.
    allow_plaintext_auth: bool = False
    #: ``[smtp.dkim]``: sign every email. Unset: nothing is signed here (the relay may sign).
    dkim: DkimSettings | None = None

    @field_validator("sender")
    @classmethod
    def _a_mailbox(cls, value: str) -> str:
        check_text(value, field="")
        _, address = parseaddr(value)
        if not address or "@" not in address:
            raise ValueError(f"not an email address: {value!r} (write 'Name <user@domain>')")
        try:
            mail.check_address(address)
        except mail.MessageBuildError as exc:
            raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> SmtpSettings:
        if self.password is not None and self.security == "none" and not self.allow_plaintext_auth:
            raise ValueError(
                "a password with security = 'none' would cross the network unencrypted: "
                "use 'starttls' or 'tls', or set allow_plaintext_auth = true to accept that"
            )
        return self

    @model_validator(mode="after")
    def _dkim_aligns(self) -> SmtpSettings:
        if self.dkim is None:
            return self
        domain = parseaddr(self.sender)[1].rpartition("@")[2].lower()
        if domain != self.dkim.domain and not domain.endswith("." + self.dkim.domain):
            raise ValueError(
                f"smtp.dkim.domain {self.dkim.domain!r} does not align with smtp.sender's "
                f"domain {domain!r}: DMARC passes only when the From domain is the signing "
                "domain or under it"
            )
        return self


class WebhookSettings(_Strict):
    """How webhooks go out."""

    #: Private, loopback and link-local targets are refused unless inside one of these.
    allow_cidrs: list[AllowRange] = []
    timeout: Duration = timedelta(seconds=15)
    #: An endpoint that fails every attempt for this long is disabled (0: never).
    disable_after: Retention = timedelta(days=5)

    @field_validator("timeout")
    @classmethod
    def _at_most_15s(cls, value: timedelta) -> timedelta:
        if value > timedelta(seconds=15):
            raise ValueError("webhook timeout is at most 15s")
        return value


class FeedSettings(_Strict):
    """How watched sources are fetched and parsed."""

    #: Feeds on private, loopback or link-local addresses are refused unless inside one of
    #: these (a list of its own: webhook receivers and feed servers are different hosts).
    allow_cidrs: list[AllowRange] = []
    #: A feed larger than this (bytes, after decompression) is refused with a reason.
    max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, le=1024**3)
    #: A feed whose parse takes longer than this is refused with a reason (its parser
    #: process killed and replaced). A 17,000-event feed takes about 7 s on two busy cores.
    parse_timeout: Duration = timedelta(seconds=60)
    #: A parse that needs more memory than this (MiB, beyond the parser process's own
    #: ~40) refuses its feed, and the parser process is replaced.
    parse_memory_mib: int = Field(default=1024, ge=64, le=64 * 1024)
    #: Feeds parsed at once, each in a parser process of its own: a feed that takes its
    #: whole budget holds up the others only when every parser is busy.
    parsers: int = Field(default=2, ge=1, le=16)

    @field_validator("parse_timeout")
    @classmethod
    def _between_1s_and_1h(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=1):
            raise ValueError("parse_timeout is between 1s and 1h")
        return value


class DeliverySettings(_Strict):
    """How the outbox workers send."""

    #: Deliveries one worker claims at a time.
    batch: int = Field(default=500, ge=1, le=5000)
    #: Batches a worker has in flight at once, so one slow endpoint does not hold up the rest.
    parallel: int = Field(default=2, ge=1, le=16)
    #: Webhook requests in flight at once.
    concurrency: int = Field(default=64, ge=1, le=1024)
    #: SMTP connections kept open and reused.
    smtp_connections: int = Field(default=8, ge=1, le=100)
    #: How long a claim lasts; a worker that dies loses its claims after this.
    lease: Duration = timedelta(minutes=2)
    #: How often an idle worker looks for due deliveries.
    poll: Duration = timedelta(seconds=1)
    #: Delays before each retry after the first, immediate, attempt.
    retry_schedule: list[Duration] = list(DEFAULT_SCHEDULE[1:])
    #: Each delay is lengthened by a random fraction of itself up to this.
    jitter: float = Field(default=0.1, ge=0, le=1)
    #: On SIGTERM, how long in-flight deliveries may take to finish.
    drain_timeout: Duration = timedelta(seconds=30)
    #: A change plans this many readers in its own transaction; the rest are planned a
    #: chunk at a time after it commits, while the first are already being sent (0: plan
    #: every reader in the change's transaction).
    fanout_chunk: int = Field(default=500, ge=0, le=100_000)
    #: How long an expander holds a fan-out without planning a chunk (renewed by each
    #: chunk, which takes well under a second): a killed replica's fan-out is taken over
    #: after this, not after a whole delivery lease.
    fanout_lease: Duration = timedelta(seconds=15)

    @model_validator(mode="after")
    def _fanout_lease_in_bounds(self) -> DeliverySettings:
        if not timedelta(seconds=1) <= self.fanout_lease <= timedelta(minutes=10):
            raise ValueError(
                f"fanout_lease ({format_duration(self.fanout_lease)}) must be 1s to 10m"
            )
        return self


class UpstreamConfig(_Strict):
    """A system allowed to push status changes signed per Standard Webhooks."""

    name: Slug
    secrets: list[WebhookSecret] = Field(min_length=1)


class ApiSettings(_Strict):
    """Limits of the HTTP API."""

    #: Largest request body accepted, in bytes (413 beyond it).
    max_body: int = Field(default=65_536, ge=1_024, le=16_777_216)
    #: Requests per minute one token may make (429 with Retry-After beyond it).
    rate_per_minute: int = Field(default=600, ge=1)


class HttpSettings(_Strict):
    """How the HTTP server treats slow, idle and numerous clients (see README, The HTTP
    server)."""

    #: A connection whose request head (request line and headers) has not fully arrived
    #: this long after it opened, or after the first byte of a later request, is closed.
    head_timeout: Duration = timedelta(seconds=10)
    #: An idle kept-alive connection is closed after this.
    keep_alive: Duration = timedelta(seconds=5)
    #: A request head larger than this (bytes) is answered 431 and the connection closed.
    max_header_bytes: int = Field(default=65_536, ge=4_096, le=1_048_576)
    #: Connections held at once; beyond it a new one evicts the oldest idle or half-sent
    #: connection, or is answered 503 when all are busy. Also held well under the file
    #: descriptor limit, so the outbox always has sockets of its own.
    max_connections: int = Field(default=1_000, ge=8, le=100_000)
    #: The listening socket's backlog (also how many connections are accepted in one go).
    backlog: int = Field(default=128, ge=8, le=4_096)
    #: Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or
    #: networks); from anyone else those headers are ignored. None by default.
    trusted_proxies: list[str] = []

    @field_validator("head_timeout", "keep_alive")
    @classmethod
    def _between_1s_and_10m(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(minutes=10):
            raise ValueError("between 1s and 10m")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        # Written out as uvicorn compares them: a network with its host bits cleared.
        try:
            return [
                str(ip_network(item, strict=False)) if "/" in item else str(ip_address(item))
                for item in value
            ]
        except ValueError as exc:
            raise ValueError(f"not an IP address or network: {exc}") from None


#: A language the pages speak; the words shown on them in one language.
PageLocale = Literal["en", "ru"]
PageText = Annotated[str, Field(min_length=1, max_length=200)]


def _default_title() -> dict[PageLocale, str]:
    return {"en": "Meeting status", "ru": "Статус встреч"}


#: A logo's file types (by suffix) and their media types; at most `LOGO_LIMIT` bytes.
LOGO_TYPES = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}
LOGO_LIMIT = 256 * 1024


_V = TypeVar("_V")


def _pick(given: Mapping[PageLocale, _V], lang: str) -> _V | None:
    """The value for `lang` of a per-language table, if it has one."""
    return next((value for key, value in given.items() if key == lang), None)


class PublicSettings(_Strict):
    """The public face: status pages, feeds and self-service subscription."""

    #: Serve the pages, feeds and the subscribe form (off: those paths are 404).
    enabled: bool = False
    #: The pages' heading: one for every language, or one per language
    #: (``{ en = "Meeting status", ru = "Статус встреч" }``; English is the fallback).
    title: PageText | dict[PageLocale, PageText] = Field(default_factory=_default_title)
    #: Who publishes the pages, shown beside the logo and in feeds, per language.
    organisation: dict[PageLocale, PageText] = Field(default_factory=dict)
    #: A logo per language (an SVG, PNG, JPEG or WebP file of at most 256 KiB; English is
    #: the fallback), shown at the top of every page.
    logo: dict[PageLocale, Path] = Field(default_factory=dict)
    #: The accent colour of links and buttons (``#rrggbb``); where it would be hard to read
    #: on the page's background (light or dark theme) a darker or lighter shade is used.
    accent: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] = "#0b4f9c"
    #: How long a confirmation link works; unconfirmed subscriptions are pruned after it.
    confirm_within: Duration = timedelta(hours=24)
    #: Subscribe requests one client address may make an hour (429 beyond).
    per_client_per_hour: int = Field(default=10, ge=1, le=10_000)
    #: Confirmation emails one address may be sent a day, whoever asks.
    per_address_per_day: int = Field(default=3, ge=1, le=20)
    #: How often calendar apps should refresh the feeds (REFRESH-INTERVAL, X-PUBLISHED-TTL).
    refresh: Duration = timedelta(minutes=15)
    #: Entries in /feed.atom: the newest changes, whatever the size of the store.
    feed_entries: int = Field(default=50, ge=1, le=1_000)
    #: Meetings in each section (upcoming, recent) of the index page.
    page_entries: int = Field(default=50, ge=1, le=1_000)
    #: Meetings in /calendar.ics: the soonest from 30 days ago on.
    calendar_entries: int = Field(default=500, ge=1, le=10_000)

    @field_validator("title")
    @classmethod
    def _title_in_english(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(value, dict) and "en" not in value:
            raise ValueError("give the title in English too (en = ...): it is the fallback")
        return value

    @field_validator("logo")
    @classmethod
    def _logo_readable(cls, value: dict[str, Path]) -> dict[str, Path]:
        for lang, path in value.items():
            if path.suffix.lower() not in LOGO_TYPES:
                raise ValueError(f"logo.{lang}: {path.name} is not .svg, .png, .jpg or .webp")
            try:
                size = path.stat().st_size
            except OSError as exc:
                raise ValueError(f"logo.{lang}: cannot read {path}: {exc.strerror}") from None
            if size > LOGO_LIMIT:
                raise ValueError(f"logo.{lang}: {path} is over 256 KiB")
        return value

    def title_in(self, lang: str) -> str:
        """The heading in `lang` (English when not given in it)."""
        if isinstance(self.title, str):
            return self.title
        return _pick(self.title, lang) or self.title["en"]

    def organisation_in(self, lang: str) -> str:
        """Who publishes, in `lang` (English, then nothing, when not given in it)."""
        return _pick(self.organisation, lang) or _pick(self.organisation, "en") or ""

    def logo_in(self, lang: str) -> Path | None:
        """The logo for `lang` (English's when it has none of its own)."""
        return _pick(self.logo, lang) or _pick(self.logo, "en")


class NotifySettings(_Strict):
    """Chat and push services through Apprise URLs."""

    #: The URL schemes (services) subscribers may use; anything else is refused when the
    #: subscriber is saved.
    schemes: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9+.-]{0,30}$")]] = Field(
        default_factory=lambda: list(DEFAULT_SCHEMES)
    )
    #: How long one send may take (Apprise's socket timeouts are held to it too).
    timeout: Duration = timedelta(seconds=15)
    #: Sends in flight at once (each holds a thread while it waits on the service).
    threads: int = Field(default=16, ge=1, le=256)

    @field_validator("timeout")
    @classmethod
    def _at_most_60s(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(seconds=60):
            raise ValueError("notify.timeout is between 1s and 60s")
        return value


class ReminderSettings(_Strict):
    """How reminders are kept on time."""

    #: A reminder missed while the daemon was down is still sent, marked late, if its
    #: instant is at most this long ago; otherwise it is recorded as missed.
    grace: Duration = timedelta(minutes=10)
    #: How often the daemon looks for reminders changed by another process (the CLI).
    sync: Duration = timedelta(seconds=2)
    #: Timers are kept only for reminders due within this (refilled from the store every
    #: half of it), so a million pending reminders do not live in memory.
    horizon: Duration = timedelta(minutes=10)

    @field_validator("horizon")
    @classmethod
    def _horizon_in_range(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= timedelta(days=400):
            raise ValueError("reminders.horizon is between 1m and 400d")
        return value


class LeaderSettings(_Strict):
    """Scheduler leadership among replicas sharing one PostgreSQL database.

    One replica at a time runs the reminder timers and feed polls; the others take over
    within `lease` + `renew` of it dying (or at once when it stops gracefully).
    """

    #: How long a lease lasts without renewal: a dead leader is replaced after this.
    lease: Duration = timedelta(seconds=10)
    #: How often the leader renews its lease and the others try to take it.
    renew: Duration = timedelta(seconds=2)

    @model_validator(mode="after")
    def _renew_well_within_lease(self) -> LeaderSettings:
        if self.renew <= timedelta(0) or self.renew * 2 > self.lease:
            raise ValueError(
                f"renew ({format_duration(self.renew)}) must be positive and at most half "
                f"of lease ({format_duration(self.lease)})"
            )
        return self


class BounceSettings(_Strict):
    """Bounces that arrive later: delivery status notifications (RFC 3464) for sent mail."""

    #: The return path: each email's envelope sender becomes ``local+TOKEN@domain`` of
    #: it, the token naming its delivery, signed. Unset: the envelope sender is smtp.sender.
    address: str | None = None
    #: Where to take DSNs over SMTP (``host:port``), for the bounce domain's MX or a
    #: forward to point at. Unset: no listener.
    listen: str | None = None
    #: Or read DSNs from an IMAP mailbox (``imaps://user:password@host/INBOX``) every
    #: `every`; each message read is deleted. Unset: no polling.
    imap: SecretStr | None = None
    every: Duration = timedelta(seconds=60)

    @field_validator("address")
    @classmethod
    def _a_return_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            address = mail.check_address(value)
        except mail.MessageBuildError as exc:
            raise ValueError(exc.message) from None
        local = address.rpartition("@")[0]
        if "+" in local:
            raise ValueError(
                f"{value!r}: the part before @ may not hold '+' (the token goes there)"
            )
        if len(local) + 1 + BOUNCE_TOKEN_LENGTH > 64:
            raise ValueError(
                f"{value!r}: the part before @ is at most {63 - BOUNCE_TOKEN_LENGTH} characters "
                f"(a {BOUNCE_TOKEN_LENGTH}-character token joins it, and a local part is at "
                "most 64)"
            )
        return address

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, colon, port = value.rpartition(":")
        if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:2525)")
        return value

    @field_validator("imap")
    @classmethod
    def _a_mailbox_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            read_mailbox_url(value.get_secret_value())
        return value

    @field_validator("every")
    @classmethod
    def _every_in_range(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(days=1):
            raise ValueError("bounces.every is between 1s and 1d")
        return value

    @model_validator(mode="after")
    def _listen_needs_address(self) -> BounceSettings:
        if self.listen is not None and self.address is None:
            raise ValueError("bounces.listen needs bounces.address (the return path it takes)")
        if self.imap is not None and self.address is None:
            raise ValueError("bounces.imap needs bounces.address (the return path it reads)")
        return self


class Settings(BaseSettings):
    """Everything notifier reads from the environment, ``.env`` and the TOML file."""

    model_config = SettingsConfigDict(
        env_prefix="NOTIFIER_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
        frozen=True,
    )

    database_url: str = "sqlite+aiosqlite:///var/notifier.db"
    listen: str = Field(
        default="127.0.0.1:8080", pattern=r"^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$"
    )
    public_url: HttpUrl = HttpUrl("http://127.0.0.1:8080")
    api_tokens: list[SecretStr] = []
    templates_dir: Path | None = None
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    smtp: SmtpSettings = SmtpSettings()
    webhooks: WebhookSettings = WebhookSettings()
    feeds: FeedSettings = FeedSettings()
    delivery: DeliverySettings = DeliverySettings()
    reminders: ReminderSettings = ReminderSettings()
    leader: LeaderSettings = LeaderSettings()
    api: ApiSettings = ApiSettings()
    http: HttpSettings = HttpSettings()
    public: PublicSettings = PublicSettings()
    notify: NotifySettings = NotifySettings()
    bounces: BounceSettings = BounceSettings()
    #: Systems that may push status changes signed instead of with a bearer token.
    upstreams: list[UpstreamConfig] = []
    #: Told by email when a webhook endpoint is disabled (optional).
    operator_email: EmailStr | None = None
    #: Sent deliveries, attempts, processed event ids and unused notices older than this
    #: are pruned by the scheduler leader (``0`` keeps everything).
    retention: Retention = timedelta(days=90)
    #: With SQLite, /readyz answers 503 ("disk nearly full") while the file system holding
    #: the database has less free than this (``"64MiB"``; 0: not checked), before writes fail.
    min_free_disk: ByteSize = ByteSize(64 * 1024**2)
    #: How often the daemon checks the config file for edits (SIGHUP reloads at once).
    config_watch: Duration = timedelta(seconds=2)
    #: Who may read what, lowest first: each reader gets the variants of their audience
    #: and below, and hears only of meetings at or below it (see README, Audiences).
    audiences: list[AudienceName] = Field(
        default_factory=lambda: list(DEFAULT_AUDIENCES), min_length=1, max_length=20
    )
    #: The languages a meeting's own text may be given in, the fallback first: each reader
    #: gets theirs, or the fallback's where a field has none (see README, Languages).
    languages: list[Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]] = Field(
        default_factory=lambda: ["en", "ru"], min_length=1, max_length=20
    )
    meetings: list[MeetingConfig] = []
    subscribers: list[SubscriberConfig] = []
    sources: list[SourceConfig] = []
    #: Set by `load_settings`: the file these settings were read from. Not a config key.
    config_path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> Settings:
        # A claim must outlive the longest single send, or another worker takes over a
        # delivery while it is still being sent (and sends it again). Claims are extended
        # every third of the lease while their batch runs, so one send is what counts.
        longest = max(self.webhooks.timeout, self.smtp.timeout)
        if self.delivery.lease <= longest:
            raise ValueError(
                f"delivery.lease ({format_duration(self.delivery.lease)}) must be longer than "
                f"the longest send (webhooks.timeout / smtp.timeout: {format_duration(longest)})"
            )
        return self

    @field_validator("audiences")
    @classmethod
    def _each_audience_once(cls, value: list[str]) -> list[str]:
        doubled = sorted({name for name in value if value.count(name) > 1})
        if doubled:
            raise ValueError(f"each audience once: {', '.join(doubled)} named twice")
        return value

    @property
    def audience_order(self) -> Audiences:
        """The audiences, lowest first, as the domain takes them."""
        return Audiences(tuple(self.audiences))

    @property
    def language_order(self) -> Languages:
        """The languages, the fallback first, as the domain takes them."""
        return Languages(tuple(dict.fromkeys(self.languages)))

    @property
    def endpoint_policy(self) -> EndpointPolicy:
        """Where subscribers' webhooks and chat messages may go (`notifier.endpoints`)."""
        return EndpointPolicy(tuple(self.webhooks.allow_cidrs), tuple(self.notify.schemes))

    @field_validator("public_url")
    @classmethod
    def _https_unless_loopback(cls, value: HttpUrl) -> HttpUrl:
        # RFC 8058: the one-click List-Unsubscribe URI must be https. Plain http is kept
        # for a loopback address, where a developer tries notifier out (`check` warns).
        if value.scheme != "https" and not is_loopback_host(value.host or ""):
            raise ValueError(
                f"public_url must be https for {value.host} (RFC 8058 one-click unsubscribe "
                "links are https); plain http is accepted only for loopback addresses"
            )
        if len(str(value)) > 200:
            raise ValueError("public_url is longer than 200 characters")
        if value.query or value.fragment:
            raise ValueError("public_url may not have a query or fragment")
        return value

    def local_url(self, path: str = "/") -> str:
        """Where this daemon's own HTTP server answers on this machine: `listen`, with a
        wildcard address (``0.0.0.0``, ``[::]``) replaced by loopback (the health check)."""
        host, _, port = self.listen.rpartition(":")
        loopback = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}  # a wildcard is not an address to call
        return f"http://{loopback.get(host, host)}:{port}{path}"

    def secrets(self) -> list[str]:
        """Every secret these settings hold, for logs to hide wherever one turns up."""
        found = [t.get_secret_value() for t in self.api_tokens]
        if self.smtp.password is not None:
            found.append(self.smtp.password.get_secret_value())
        if self.bounces.imap is not None:
            found.append(self.bounces.imap.get_secret_value())
            found.append(read_mailbox_url(self.bounces.imap.get_secret_value()).password)
        for upstream in self.upstreams:
            found += [s.get_secret_value() for s in upstream.secrets]
        for subscriber in self.subscribers:
            if subscriber.webhook is not None:
                found += [s.get_secret_value() for s in subscriber.webhook.secrets]
        return found

    def warnings(self) -> list[str]:
        """What is accepted but unwise, for `notifier check` to print."""
        found = []
        if self.public_url.scheme != "https":
            found.append(
                f"public_url {self.public_url} is not https: fine on loopback for trying "
                "notifier out, but mail clients show one-click unsubscribe only for https"
            )
        if self.smtp.password is not None and self.smtp.security == "none":
            found.append("smtp.password is sent unencrypted (allow_plaintext_auth = true)")
        found += self._language_gaps()
        return found

    def _language_gaps(self) -> list[str]:
        """A meeting that gives text in a language but not every field there: its readers
        get those fields in the fallback language."""
        base = self.language_order.base
        found = []
        for meeting in self.meetings:
            for lang in self.language_order.order[1:]:
                if meeting.require_languages and lang not in meeting.require_languages:
                    continue
                layer = meeting.texts.get(lang)
                if layer is None and lang not in meeting.require_languages:
                    continue
                given = layer.model_dump(exclude_none=True) if layer is not None else {}
                missing = [
                    name
                    for name in ("title", "description", "location", "participants", "reason")
                    if getattr(meeting, name) and name not in given
                ]
                if missing:
                    found.append(
                        f"meeting {meeting.id}: no {lang} text for {', '.join(missing)}; its "
                        f"{lang} readers get the {base} text there"
                    )
        return found

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "database_url must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment over ``.env`` over the TOML file (see the module docstring)."""
        return (
            init_settings,
            _Environment(settings_cls),
            _DotEnv(settings_cls),
            TomlConfigSettingsSource(settings_cls),
        )


def _members(annotation: Any) -> list[Any]:
    """The types `annotation` may be: Annotated unwrapped, unions and Optional split."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _is_table(annotation: Any) -> bool:
    return any(
        get_origin(m) in (dict, list) or (isinstance(m, type) and issubclass(m, BaseModel | dict))
        for m in _members(annotation)
    )


def _plain_list(field: FieldInfo | None) -> bool:
    """A list of plain values (strings, addresses, durations), written ``a,b`` unambiguously."""
    if field is None:
        return False
    lists = [m for m in _members(field.annotation) if get_origin(m) is list]
    return len(lists) == 1 and not _is_table(get_args(lists[0])[0])


def _admits_text(field: FieldInfo | None) -> bool:
    """A setting that is one text or a table of them (a title, per locale or not)."""
    return field is not None and str in _members(field.annotation)


class _PlainListsMixin(EnvSettingsSource):
    """Reads ``NOTIFIER_API_TOKENS=t1,t2`` as a list; JSON still works; anything that is
    neither is one line naming the variable and how to write it, not a traceback."""

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if _plain_list(field) and not text.startswith("["):
            return [item.strip() for item in text.split(",") if item.strip()]
        if _admits_text(field) and not text.startswith(("{", "[")):
            return value  # a text or a table of texts: ``NOTIFIER_PUBLIC__TITLE=Press office``
        try:
            return json.loads(text)
        except ValueError:
            pass
        name = self._variable(field_name, value)
        if _plain_list(field):
            how = "write a list as 'a,b' or as JSON '[\"a\", \"b\"]'"
        elif field is not None and any(get_origin(m) is list for m in _members(field.annotation)):
            how = 'write a list of tables as JSON \'[{"key": "value"}]\''
        else:
            how = f'write a table as JSON \'{{"key": "value"}}\', or set one key with {name}__KEY'
        raise ConfigError(f"{name}: not valid JSON; {how}")

    def explode_env_vars(
        self, field_name: str, field: FieldInfo, env_vars: Mapping[str, str | None]
    ) -> dict[str, Any]:
        # pydantic-settings skips decoding an empty nested value, so that
        # ``NOTIFIER_HTTP__TRUSTED_PROXIES=`` was "not a valid list": read it as [], as
        # ``NOTIFIER_API_TOKENS=`` is.
        delimiter = self.env_nested_delimiter or ""
        prefixes = [
            f"{env}{delimiter}" for _, env, _ in self._extract_field_info(field, field_name)
        ]
        emptied = dict(env_vars)
        for name, value in env_vars.items():
            prefix = next((p for p in prefixes if delimiter and name.startswith(p)), None)
            if prefix is None or value is None or value.strip():
                continue
            target: FieldInfo | Any | None = field
            for key in name[len(prefix) :].split(delimiter):
                target = self.next_field(target, key, self.case_sensitive)
            if isinstance(target, FieldInfo) and _plain_list(target):
                emptied[name] = "[]"
        return super().explode_env_vars(field_name, field, emptied)

    def _variable(self, field_name: str, value: str) -> str:
        """The variable that holds `value` for `field_name` (the source keeps no name)."""
        suffix = field_name.lower()
        for name, held in self.env_vars.items():
            if held == value and name.lower().endswith(suffix):
                found = name.upper()
                return f"{found} (in .env)" if isinstance(self, DotEnvSettingsSource) else found
        return f"NOTIFIER_{field_name.upper()}"


class _Environment(_PlainListsMixin, EnvSettingsSource):
    pass


class _DotEnv(_PlainListsMixin, DotEnvSettingsSource):
    pass


def config_path_from(value: str | Path | None) -> Path:
    """The config file to read: `value`, else ``NOTIFIER_CONFIG``, else the default."""
    if value:
        return Path(value)
    env = os.environ.get("NOTIFIER_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG


def read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    """The text and parsed contents of `path`, or a `ConfigError` with the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "no such file (set --config or NOTIFIER_CONFIG)", path=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=str(path)) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        raise ConfigError(f"TOML syntax error: {message}", path=str(path), line=line) from None


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read settings from `path` (see `config_path_from`), the environment and ``.env``.

    Raises `ConfigError` naming the file, line and field of each problem, one line each.
    Duplicate meeting or subscriber ids are errors.
    """
    config = config_path_from(path)
    text, _ = read_toml(config)

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=config)

    try:
        settings: Settings = _FromFile(**overrides, config_path=config)
    except ValidationError as exc:
        raise _config_error(exc, config, text) from None
    _check_unique(settings, config, text)
    _check_audiences(settings, config, text)
    _check_languages(settings, config, text)
    _check_targets(settings, config, text)
    _check_endpoints(settings, config, text)
    return settings


def _check_endpoints(settings: Settings, path: Path, text: str) -> None:
    """Every subscriber's webhook and Apprise URLs pass the endpoint policy as far as it can
    be judged without the network (`notifier.endpoints`; names are checked when sending)."""
    policy = settings.endpoint_policy
    for index, subscriber in enumerate(settings.subscribers):
        webhook = str(subscriber.webhook.url) if subscriber.webhook is not None else None
        notify = [secret.get_secret_value() for secret in subscriber.notify]
        for refusal in literal_refusals(webhook, notify, policy)[:1]:
            loc: tuple[str | int, ...] = ("subscribers", index, *refusal.loc)
            raise ConfigError(
                refusal.message,
                path=str(path),
                line=locate(text, loc),
                field=format_loc(loc),
            )


def _check_audiences(settings: Settings, path: Path, text: str) -> None:
    """Every audience a meeting, subscriber or source names is one of `audiences`."""
    named: list[tuple[tuple[str | int, ...], str]] = []
    for index, meeting in enumerate(settings.meetings):
        named.extend((("meetings", index, *loc), name) for loc, name in meeting.audience_names())
    for index, subscriber in enumerate(settings.subscribers):
        named.append((("subscribers", index, "audience"), subscriber.audience))
    for index, source in enumerate(settings.sources):
        named.append((("sources", index, "audience"), source.audience))
    for loc, name in named:
        if name not in settings.audiences:
            raise ConfigError(
                f"unknown audience {name!r}; audiences are {', '.join(settings.audiences)}",
                path=str(path),
                line=locate(text, loc),
                field=format_loc(loc),
            )


def _check_languages(settings: Settings, path: Path, text: str) -> None:
    """Every language a meeting gives text in is one of `languages`, and not the fallback
    (whose text is the meeting's own fields)."""
    languages = settings.language_order
    for index, meeting in enumerate(settings.meetings):
        for loc, name in meeting.language_names():
            where = ("meetings", index, *loc)
            problem = None
            if name not in languages.order:
                problem = f"unknown language {name!r}; languages are {', '.join(languages.order)}"
            elif name == languages.base:
                problem = (
                    f"{name} is the fallback language (the first of `languages`); its text is "
                    "the meeting's own fields"
                )
            if problem:
                raise ConfigError(
                    problem, path=str(path), line=locate(text, where), field=format_loc(where)
                )


def _check_targets(settings: Settings, path: Path, text: str) -> None:
    """Refuse feed URLs that name a private, loopback or link-local address outright (names
    are resolved and checked when connecting)."""
    for index, source in enumerate(settings.sources):
        host = source.url.host or ""
        if host_allowed(host, settings.feeds.allow_cidrs) is False:
            feed_loc: tuple[str | int, ...] = ("sources", index, "url")
            raise ConfigError(
                f"feed {host} is a private, loopback or link-local address; "
                "list it in feeds.allow_cidrs to allow it",
                path=str(path),
                line=locate(text, feed_loc),
                field=format_loc(feed_loc),
            )


def _check_unique(settings: Settings, path: Path, text: str) -> None:
    sections = {
        "meetings": [m.id for m in settings.meetings],
        "subscribers": [s.id for s in settings.subscribers],
    }
    for section, ids in sections.items():
        seen: dict[str, int] = {}
        for index, item_id in enumerate(ids):
            if item_id in seen:
                loc = (section, index, "id")
                raise ConfigError(
                    f"duplicate id {item_id!r} (also {section}[{seen[item_id]}])",
                    path=str(path),
                    line=locate(text, loc),
                    field=format_loc(loc),
                )
            seen[item_id] = index


def _known_keys(loc: tuple[str | int, ...]) -> list[str]:
    """The keys the table at `loc` (a location in `Settings`) may have."""
    model: Any = Settings
    for part in loc:
        fields = getattr(model, "model_fields", None) if isinstance(model, type) else None
        if isinstance(part, int):
            continue
        if fields is None or part not in fields:
            return []
        model = next((_item(m) for m in _members(fields[part].annotation) if _item(m)), None)
        if model is None:
            return []
    fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
    return [name for name, info in fields.items() if not info.exclude]


def _item(annotation: Any) -> type[BaseModel] | None:
    """The model `annotation` is, or is a list of."""
    for member in _members(annotation):
        if get_origin(member) is list:
            member = next((m for m in _members(get_args(member)[0])), None)
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _message(error: Any, loc: tuple[str | int, ...] = ()) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        close = None
        if loc and isinstance(loc[-1], str):
            close = did_you_mean(loc[-1], _known_keys(loc[:-1]))
        return f"unknown key (did you mean {close!r}?)" if close else "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind == "timezone_aware":
        return "needs a UTC offset, e.g. 2026-03-02T19:00:00+03:00"
    return message


def _config_error(exc: ValidationError, path: Path, text: str) -> ConfigError:
    """Every problem of `exc`, one line each naming the file, line (or variable) and field;
    the first problem's place is the error's own."""
    problems = [_problem(error, path, text) for error in exc.errors()]
    if len(problems) == 1:
        return problems[0]
    return ConfigError(
        # No location of its own: each line carries its own (`cite` leaves it alone).
        "\n".join(p.message for p in problems)
    )


def _problem(error: Any, path: Path, text: str) -> ConfigError:
    loc = tuple(p for p in error["loc"] if isinstance(p, str | int))
    # pydantic adds the name of a union member or validator to some locations.
    loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
    message = _message(error, loc)
    env_name = _env_name(loc)
    if env_name is not None:
        # The environment wins over the file, so the bad value came from there.
        return ConfigError(
            f"{message} (from environment variable {env_name})",
            field=format_loc(loc) or None,
            loc=loc,
        )
    line = locate(text, loc)
    if line is None and loc:
        message += " (set in .env, or a default)"
    return ConfigError(message, path=str(path), line=line, field=format_loc(loc) or None, loc=loc)


def _env_name(loc: tuple[str | int, ...]) -> str | None:
    """The ``NOTIFIER_*`` variable that sets `loc` or a parent of it, if one is set."""
    names = []
    for part in loc:
        if isinstance(part, int):
            break
        names.append(part.upper())
    for end in range(len(names), 0, -1):
        name = "NOTIFIER_" + "__".join(names[:end])
        if name in os.environ:
            return name
    return None
