"""One config file (TOML) plus ``PUBLISHER_<SECTION>__<KEY>`` environment overrides.

Validation is pydantic's, so every problem names its key and reason; :class:`ConfigError`
carries *all* of them at once, so an operator fixes a file in one round trip.
Relative paths are resolved against the config file's directory, not the current
directory, so ``publisher --config /etc/publisher/config.toml`` works from anywhere.
Secrets never live here: the SMTP password is read from the environment variable
that ``[smtp] password_env`` names.

The module is long because it is one schema: a section class per ``[table]`` of the
file, each with its defaults, bounds and cross-field checks beside the keys they are
about, and the loader (a tenth of it) that turns a file and the environment into it.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from publisher.content.model import DEFAULT_MAX_TITLE_LENGTH, ContentLimits, TakeawaysMode
from publisher.delivery.providers import Providers, check_patterns
from publisher.digest.cadence import Schedule
from publisher.mail.caniemail import DEFAULT_CLIENTS, expand_clients
from publisher.webhooks.model import EventType

ENV_PREFIX = "PUBLISHER_"


class ConfigError(Exception):
    """The config can't be used; ``problems`` lists every reason, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteSettings(_Section):
    title: str = "publisher"
    url: str = "http://127.0.0.1:8080/"  # public base URL; links and feed ids hang off it
    description: str = ""
    # BCP 47 ("en", "ar", "pt-BR"): pages and emails carry it as <html lang>, with dir="rtl"
    # for a right-to-left language; feeds as their language.
    language: str = "en"
    author: str = ""
    postal_address: str = ""  # CAN-SPAM / bulk-sender rules want it in every digest footer
    output_dir: Path = Path("var/public")
    templates_dir: Path | None = None  # overrides single templates of the built-in set
    # Files served at /images/ (the articles' pictures, for the pages and the emails):
    # content/images/ by default, so "/images/x.png" in an article is content/images/x.png.
    static_dir: Path = Path("content/images")
    # Topics subscribers may choose, on top of every tag an article already uses.
    topics: list[str] = []
    # Display names of tags on the subscribe and preferences pages (the tag is what is
    # stored): {"climate": "Climate & energy"}.  A named tag is offered like `topics`.
    topic_names: dict[str, str] = {}

    @field_validator("topic_names")
    @classmethod
    def _named_tags(cls, value: dict[str, str]) -> dict[str, str]:
        problems = [
            f"{tag!r} is not a tag (it needs a letter or digit)" for tag in value if not any(c.isalnum() for c in tag)
        ] + [f"{tag!r} needs a display name, not an empty one" for tag, name in value.items() if not name.strip()]
        if problems:
            raise ValueError("; ".join(problems))
        return {tag: name.strip() for tag, name in value.items()}

    @property
    def offered_topics(self) -> list[str]:
        """The topics offered besides article tags: ``topics`` and every named tag."""
        return [*self.topics, *self.topic_names]

    @field_validator("language")
    @classmethod
    def _language_tag(cls, value: str) -> str:
        """The tag's shape only: whether CLDR knows it, and whether a catalog speaks it, is
        checked where Babel loads anyway (``publisher check``, the daemon's start)."""
        from publisher.content.language import LanguageError, well_formed

        try:
            return well_formed(value)
        except LanguageError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL, e.g. https://news.example.org/")
        return value if value.endswith("/") else value + "/"


class ContentSettings(_Section):
    dir: Path = Path("content")
    # Per article, whatever a source sends (see README, "Limits").
    max_tables: int = Field(default=20, ge=0, le=1000)
    max_tags: int = Field(default=20, ge=0, le=1000)
    max_table_cells: int = Field(default=300, ge=1, le=1_000_000)
    max_title_length: int = Field(default=DEFAULT_MAX_TITLE_LENGTH, ge=20, le=10_000)
    # An article without takeaways: "author" leaves it so, "suggest" has the CLI propose some
    # (never published), "auto" publishes the proposals, marked as generated.
    takeaways: TakeawaysMode = TakeawaysMode.SUGGEST

    @property
    def limits(self) -> ContentLimits:
        """The limits (and the takeaways mode) as the parsers take them."""
        return ContentLimits(self.max_tables, self.max_tags, self.max_table_cells, self.max_title_length,
                             self.takeaways)


class MarkdownSource(_Section):
    """A directory of Markdown files (``[content] dir`` is the default one)."""

    type: Literal["markdown"]
    dir: Path


class UpstreamFeed(_Section):
    """An upstream RSS or Atom feed (a WordPress or Ghost blog), fetched every ``interval`` seconds."""

    type: Literal["feed"]
    url: str = Field(max_length=990)  # stored with its articles as "feed:<url>" (1,000 characters)
    interval: float = Field(default=900.0, gt=0)
    timeout: float = Field(default=30.0, gt=0)  # seconds for the whole response
    max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value


class ApiSource(_Section):
    """Articles POSTed to ``/api/articles`` (a CMS webhook; needs PUBLISHER_API_TOKEN)."""

    type: Literal["api"]


SourceSettings = Annotated[MarkdownSource | UpstreamFeed | ApiSource, Field(discriminator="type")]


class StorageSettings(_Section):
    data_dir: Path = Path("var")  # the generated secret key and other local state


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///var/publisher.db"
    # SQLite: seconds a write waits for another connection's lock before it fails (and
    # delivery writes its outcomes again, until it can).
    busy_timeout: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must name an async driver: sqlite+aiosqlite:///path/to/file.db "
                "or postgresql+asyncpg://user@host/dbname"
            )
        return value

    @property
    def shared(self) -> bool:
        """Whether several nodes may use this database at once (PostgreSQL; SQLite is one node's)."""
        return self.url.startswith("postgresql")

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database file; None for PostgreSQL or an in-memory database."""
        prefix, _, rest = self.url.partition(":///")
        if not prefix.startswith("sqlite") or not rest or rest.startswith(":memory:"):
            return None
        return Path(rest.partition("?")[0])


class FeedSettings(_Section):
    max_entries: int = Field(default=20, ge=1, le=1000)
    # Tags with a feed of their own (three documents each): those with the most articles.
    max_tag_feeds: int = Field(default=200, ge=0, le=100_000)
    # An entry whose content (HTML) is longer carries its summary and a link instead.
    max_entry_bytes: int = Field(default=100_000, ge=1_000)


class ProviderPacingSettings(_Section):
    """``[delivery.providers.<name>]``: one mailbox provider's own limits, under ``[delivery]``'s
    (README, "Pacing per provider"); 0: no limit of its own."""

    concurrency: int = Field(default=0, ge=0, le=256)  # messages to it in flight at once
    rate: float = Field(default=0.0, ge=0)  # messages per second to it


class DeliverySettings(_Section):
    transport: Literal["maildir", "smtp"] = "maildir"
    outbox: Path = Path("var/outbox")
    from_address: str = "newsletter@localhost"
    from_name: str = ""
    # Confirmation and other one-to-one mail may come from another address (a
    # transactional stream with its own reputation); empty: from_address.
    transactional_from: str = ""
    batch_size: int = Field(default=500, ge=1, le=100_000)
    max_attempts: int = Field(default=8, ge=1, le=100)  # temporary failures before a row fails
    retry_base: float = Field(default=60.0, gt=0)  # seconds; doubles per attempt, with jitter
    max_age: float = Field(default=72 * 3600.0, gt=0)  # seconds a row may stay deferred before it fails
    concurrency: int = Field(default=8, ge=1, le=256)  # SMTP connections used at once
    rate: float = Field(default=0.0, ge=0)  # messages per second across all connections; 0 = no limit
    window_messages: int = Field(default=0, ge=0)  # at most this many messages ...
    window_seconds: float = Field(default=3600.0, gt=0)  # ... per this sliding window; 0 messages = no limit
    # Pause a digest when more than this share of the last error_window messages failed.
    max_error_ratio: float = Field(default=0.5, gt=0, le=1)
    error_window: int = Field(default=200, ge=10)
    # Pause a digest when this many messages in a row are refused with the same reply:
    # the relay itself is broken (an unverified sender), not the readers.
    pause_after_identical: int = Field(default=5, ge=2, le=1000)
    # A mailbox provider throttled this many times in a row is left for the next delivery
    # pass: its messages wait (deferred) instead of holding the run; the others go on.
    throttle_limit: int = Field(default=3, ge=1, le=10)
    soft_bounce_limit: int = Field(default=3, ge=1)  # soft bounces before an address is suppressed
    # Limits per mailbox provider (a name from the provider table: built-in or [providers]).
    providers: dict[str, ProviderPacingSettings] = {}


class SmtpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    tls: Literal["none", "starttls", "implicit"] = "none"
    username: str = ""
    password_env: str = ""  # name of the environment variable that holds the password
    timeout: float = Field(default=30.0, gt=0)
    validate_certs: bool = True
    ca_file: Path | None = None  # PEM bundle to trust instead of the system CAs (a private relay)
    max_messages_per_connection: int = Field(default=1000, ge=1)  # then reconnect (relays cap sessions)

    def password(self) -> str:
        return os.environ.get(self.password_env, "") if self.password_env else ""


class DkimSettings(_Section):
    """Sign every message when all three are set (the key file holds a PEM private key)."""

    selector: str = ""
    domain: str = ""
    key_file: Path | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.selector and self.domain and self.key_file)


class SchedulerSettings(_Section):
    scan_interval: float = Field(default=60.0, gt=0)


class DigestSettings(_Section):
    daily_at: time = time(8, 0)
    weekly_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    timezone: str = "UTC"  # new subscribers' zone until they pick theirs
    max_articles: int = Field(default=20, ge=1, le=200)
    # A digest's HTML past this many bytes as sent (quoted-printable) shows its last articles
    # as headlines (Gmail clips a message past about 102 KB, the unsubscribe footer with it).
    max_message_bytes: int = Field(default=100_000, ge=10_000)
    # A send slot missed while the daemon was down is sent on start if at most this
    # old; older ones are skipped (logged), their articles wait for the next digest.
    grace_hours: float = Field(default=6.0, ge=0, le=24 * 7)
    # The Subject is cut at a word to this many characters (with "…"); a mail client shows ~60.
    max_subject_length: int = Field(default=200, ge=20, le=900)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.daily_at, self.weekly_day, self.timezone)


def _mail_clients(value: list[str]) -> list[str]:
    """Every name must be a mail client (or family) the caniemail data knows."""
    expand_clients(value)  # the data is read here, so only when the key is set
    return value


class EmailSettings(_Section):
    # The mail clients whose support `publisher check` and `preview` lint the emails against
    # (caniemail ids: a family such as "gmail", or one platform such as "outlook.windows").
    clients: Annotated[list[str], AfterValidator(_mail_clients)] = Field(
        default_factory=lambda: list(DEFAULT_CLIENTS)
    )

    @property
    def client_ids(self) -> tuple[str, ...]:
        """``clients`` with each family spelled out into its platforms."""
        return expand_clients(self.clients)


class WebSubSettings(_Section):
    hub: str = ""  # a WebSub hub URL (e.g. https://pubsubhubbub.appspot.com/); "" = no push
    timeout: float = Field(default=10.0, gt=0)  # seconds per ping
    attempts: int = Field(default=5, ge=1, le=20)  # per changed feed, with growing pauses

    @field_validator("hub")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL, or empty for no hub")
        return value


class ClusterSettings(_Section):
    """Several nodes on one PostgreSQL database (SQLite is one node: these don't apply)."""

    # Seconds within which another node takes over the schedule when the leader dies.
    failover: float = Field(default=15.0, ge=1, le=600)
    # Seconds a node's claim on a batch of deliveries lasts without renewal: a node that
    # died leaves its batch to the others after this long.  A live node renews it.
    lease: float = Field(default=30.0, ge=1, le=3600)
    # Seconds between a node's looks at the ledger for deliveries to share.
    poll_interval: float = Field(default=2.0, gt=0, le=300)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    shutdown_timeout: float = Field(default=30.0, gt=0)
    # Seconds a connection may go without a complete request: idle keep-alive, a
    # client still trickling its headers in (slowloris), or a form's body (408).  Above nginx's upstream
    # keepalive_timeout (60 s), so nginx never reuses a connection the daemon closed.
    idle_timeout: float = Field(default=75.0, gt=0, le=3600)
    # Connections open at once; past it a new one gets 503 and is closed.  Keep it
    # under the process's open-file limit (`ulimit -n`, 1024 by default).
    max_connections: int = Field(default=900, ge=1)
    # Reverse proxies whose X-Forwarded-For names the real client (for rate limits).
    trusted_proxies: list[str] = []

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value


_LOOPBACK_NAMES = ("localhost", "localhost.")


class WebhookSettings(_Section):
    """A ``[[webhooks]]`` endpoint: the events it wants POSTed, signed (publisher.webhooks).

    ``url`` must be https, except to a loopback address (a relay or a test receiver on
    this machine): the events carry subscribers' addresses.  ``secret_env`` names the
    environment variable holding the signing secret; it must be set (load_settings).
    """

    url: str = Field(max_length=1000)
    secret_env: str = Field(min_length=1)
    events: list[EventType] = []  # empty: every type
    timeout: float = Field(default=10.0, gt=0, le=300)  # seconds for the whole exchange
    retry_base: float = Field(default=10.0, gt=0)  # seconds after the first failure, doubling after each
    retry_cap: float = Field(default=3600.0, gt=0)  # the longest wait between two attempts

    @field_validator("url")
    @classmethod
    def _https_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https URL")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("must be https (http only to a loopback address: the events carry subscribers' addresses)")
        return value


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _rate(value: str) -> str:
    import limits  # the web's rate limiter: loaded only where a config sets a rate

    try:
        limits.parse(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a rate such as '10/hour' or '5 per minute'") from None
    return value


_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _parse_duration(value: str) -> timedelta | None:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"`` as a timedelta; None for ``"0"`` or ``""`` (off)."""
    text = value.strip().lower()
    if text in ("", "0"):
        return None
    number, unit = text[:-1].strip(), text[-1:]
    if unit not in _DURATION_UNITS or not number.isdigit() or int(number) == 0:
        raise ValueError(f"{value!r} is not a duration such as '30d', '12h' or '90m' (or '0' for never)")
    return timedelta(seconds=int(number) * _DURATION_UNITS[unit])


def _duration(value: str | int) -> str:
    """A duration setting checked, as text (TOML's ``0`` is the string "0")."""
    _parse_duration(str(value))
    return str(value)


def _providers(value: dict[str, list[str]]) -> dict[str, list[str]]:
    return check_patterns(value)


class SubscribersSettings(_Section):
    default_cadence: Literal["instant", "daily", "weekly"] = "daily"
    confirm_within_hours: float = Field(default=48.0, gt=0)  # how long a confirmation link works
    # Sign-up limits (POST /subscribe), in the notation of the `limits` library.
    signup_rate_per_client: Annotated[str, AfterValidator(_rate)] = "10/hour"
    signup_rate_per_address: Annotated[str, AfterValidator(_rate)] = "3/hour"
    # Storing a sign-up (and the other work a page leaves for after its answer) is tried
    # this many times while the database fails, waiting signup_retry_seconds, then twice
    # as long each time; then it is logged as an error and counted in /readyz.
    signup_attempts: int = Field(default=4, ge=1, le=20)
    signup_retry_seconds: float = Field(default=1.0, gt=0, le=600)
    # Email a welcome (templates/email/welcome.*) when a subscriber confirms a sign-up.
    welcome: bool = True

    # Pending sign-ups (never confirmed) older than this are deleted by the daemon's
    # daily purge: "30d", "12h", "90m"; "0" or "" keeps them.
    purge_pending_after: Annotated[str | int, AfterValidator(_duration)] = "30d"

    @property
    def purge_pending_age(self) -> timedelta | None:
        """``purge_pending_after`` as a duration; None when the purge is off."""
        return _parse_duration(str(self.purge_pending_after))


class TrackingSettings(_Section):
    """What is counted of readers' clicks (README, "Click counts"): nothing by default."""

    # "aggregate": the links in digests' HTML go through signed redirects on the site that
    # count clicks per link per digest, with no record of who clicked.  "off": links go
    # straight to their targets, and digests are exactly as without this setting.
    clicks: Literal["off", "aggregate"] = "off"
    # Clicks counted per client address; past it a click still redirects, uncounted
    # (one reader or a link scanner can't inflate a link's count).
    click_rate_per_client: Annotated[str, AfterValidator(_rate)] = "30/minute"


class WarmupSettings(_Section):
    """A new sending domain's daily allowance per mailbox provider (README, "Warm-up")."""

    # The first day of sending from this domain (a UTC date); absent: no warm-up.
    start: date | None = None
    first_day: int = Field(default=300, ge=1)  # messages per provider on the first day
    growth: float = Field(default=2.0, ge=1.0, le=100.0)  # the allowance is multiplied by this each day
    # Warm-up ends on the day the allowance reaches this many (0: no such end; the ramp
    # still ends once its allowance no longer limits anything).
    max: int = Field(default=0, ge=0)


class BreakerSettings(_Section):
    """Circuit breakers per mailbox provider on complaint and hard-bounce rates (README, "Circuit breakers").

    A rate is the readers of a provider who complained (or hard-bounced) in ``window``
    over the messages sent to it in that window; a threshold of 0 is off.
    """

    window: Annotated[str | int, AfterValidator(_duration)] = "7d"
    complaints_warn: float = Field(default=0.001, ge=0, le=1)
    complaints_pause: float = Field(default=0.003, ge=0, le=1)
    hard_bounces_warn: float = Field(default=0.02, ge=0, le=1)
    hard_bounces_pause: float = Field(default=0.05, ge=0, le=1)
    min_messages: int = Field(default=200, ge=1)  # no judgement on fewer messages sent in the window

    @property
    def window_length(self) -> timedelta | None:
        """``window`` as a duration; None when it is "0" (breakers off)."""
        return _parse_duration(str(self.window))


class AdminSettings(_Section):
    """The operator dashboard at ``/admin/`` (README, "Dashboard"): sessions and sign-in limits."""

    # Minutes a session lasts without a request, and hours it lasts at most however busy.
    session_idle_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    session_max_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Failed sign-ins in a row that lock an account, and for how many minutes.
    lockout_after: int = Field(default=5, ge=1, le=100)
    lockout_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    # Sign-in attempts per client address, and per account named, in the `limits` notation.
    signin_rate_per_client: Annotated[str, AfterValidator(_rate)] = "20/10minutes"
    signin_rate_per_account: Annotated[str, AfterValidator(_rate)] = "10/10minutes"

    @property
    def session_idle(self) -> timedelta:
        return timedelta(minutes=self.session_idle_minutes)

    @property
    def session_max(self) -> timedelta:
        return timedelta(hours=self.session_max_hours)

    @property
    def lockout(self) -> timedelta:
        return timedelta(minutes=self.lockout_minutes)


class Settings(_Section):
    site: SiteSettings = SiteSettings()
    content: ContentSettings = ContentSettings()
    storage: StorageSettings = StorageSettings()
    database: DatabaseSettings = DatabaseSettings()
    feeds: FeedSettings = FeedSettings()
    delivery: DeliverySettings = DeliverySettings()
    smtp: SmtpSettings = SmtpSettings()
    dkim: DkimSettings = DkimSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    digest: DigestSettings = DigestSettings()
    email: EmailSettings = EmailSettings()
    server: ServerSettings = ServerSettings()
    cluster: ClusterSettings = ClusterSettings()
    websub: WebSubSettings = WebSubSettings()
    subscribers: SubscribersSettings = SubscribersSettings()
    tracking: TrackingSettings = TrackingSettings()
    warmup: WarmupSettings = WarmupSettings()
    breakers: BreakerSettings = BreakerSettings()
    admin: AdminSettings = AdminSettings()
    # Mailbox providers besides the built-in table (publisher.delivery.providers): name = [patterns].
    providers: Annotated[dict[str, list[str]], AfterValidator(_providers)] = {}
    # Where articles come from; none listed: [content] dir and the API.
    sources: list[SourceSettings] = []
    webhooks: list[WebhookSettings] = []

    # Where the file was read from; relative paths above are already resolved against it.
    source: Path | None = Field(default=None, exclude=True)

    @property
    def markdown_dirs(self) -> list[Path]:
        if not self.sources:
            return [self.content.dir]
        return [s.dir for s in self.sources if isinstance(s, MarkdownSource)]

    @property
    def feed_sources(self) -> list[UpstreamFeed]:
        return [s for s in self.sources if isinstance(s, UpstreamFeed)]

    @property
    def api_source(self) -> bool:
        """Whether ``POST /api/articles`` takes articles."""
        return not self.sources or any(isinstance(s, ApiSource) for s in self.sources)

    @property
    def sending_domain(self) -> str:
        return self.delivery.from_address.rpartition("@")[2] or "localhost"


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    """``PUBLISHER_SMTP__PORT=2525`` → ``{"smtp": {"port": "2525"}}``."""
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].partition("__")
        out.setdefault(section.lower(), {})[key.lower()] = value
    return out


def _merge(base: dict[str, Any], overrides: dict[str, dict[str, str]]) -> dict[str, Any]:
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for section, values in overrides.items():
        target = merged.setdefault(section, {})
        if isinstance(target, dict):
            target.update(values)
    return merged


def _resolve_paths(settings: Settings, root: Path) -> None:
    """Make every relative path (and a relative SQLite file) absolute against ``root``."""

    def fix(p: Path) -> Path:
        return p if p.is_absolute() else (root / p).resolve()

    settings.site.output_dir = fix(settings.site.output_dir)
    if settings.site.templates_dir is not None:
        settings.site.templates_dir = fix(settings.site.templates_dir)
    settings.site.static_dir = fix(settings.site.static_dir)
    settings.content.dir = fix(settings.content.dir)
    for source in settings.sources:
        if isinstance(source, MarkdownSource):
            source.dir = fix(source.dir)
    settings.storage.data_dir = fix(settings.storage.data_dir)
    settings.delivery.outbox = fix(settings.delivery.outbox)
    if settings.smtp.ca_file is not None:
        settings.smtp.ca_file = fix(settings.smtp.ca_file)
    if settings.dkim.key_file is not None:
        settings.dkim.key_file = fix(settings.dkim.key_file)
    prefix, sep, rest = settings.database.url.partition(":///")
    if prefix.startswith("sqlite") and sep and rest and not rest.startswith((":memory:", "/")):
        settings.database.url = f"{prefix}:///{fix(Path(rest))}"


def _provider_pacing_problems(settings: Settings, origin: str) -> list[str]:
    """``[delivery.providers.<name>]`` tables whose name is no provider of the table (a typo
    would otherwise leave that provider unlimited, silently)."""
    known = Providers(settings.providers).names
    return [
        f"{origin}: delivery.providers.{name}: unknown mailbox provider {name!r} "
        f"(known: {', '.join(known)}; [providers] adds others)"
        for name in settings.delivery.providers if name not in known
    ]


def _describe(error: ValidationError, origin: str, from_env: dict[str, dict[str, str]]) -> list[str]:
    """One line per problem, naming the key and where its value came from."""
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        key = ".".join(loc)
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling)"
        where = origin
        if len(loc) >= 2 and loc[1] in from_env.get(loc[0], {}):
            where = f"environment {ENV_PREFIX}{loc[0].upper()}__{loc[1].upper()}"
        elif len(loc) == 1 and loc[0] in from_env:
            where = f"environment {ENV_PREFIX}{loc[0].upper()}__*"
        problems.append(f"{where}: {key}: {message}")
    return problems


def _webhook_problems(hooks: list[WebhookSettings], environ: dict[str, str], origin: str) -> list[str]:
    """What the schema can't see: each secret is set (its value is never shown), each URL listed once."""
    problems, seen = [], set()
    for index, hook in enumerate(hooks):
        if not environ.get(hook.secret_env):
            problems.append(f"{origin}: webhooks.{index}.secret_env: the environment variable {hook.secret_env} is "
                            "not set (it holds this endpoint's signing secret)")
        if hook.url in seen:
            problems.append(f"{origin}: webhooks.{index}.url: {hook.url} is listed twice")
        seen.add(hook.url)
    return problems


def load_settings(path: Path | None, environ: dict[str, str] | None = None) -> Settings:
    """Read ``path`` (or only defaults when None), apply the environment, validate.

    Raises :class:`ConfigError` listing every problem, each naming the key.
    """
    environ = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    origin = str(path) if path else "defaults"
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{path}: no such config file (use --config PATH or PUBLISHER_CONFIG)"]) from None
        except UnicodeDecodeError as exc:
            raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    overrides = _env_overrides(environ)
    try:
        settings = Settings.model_validate(_merge(data, overrides))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin, overrides)) from None
    if problems := _webhook_problems(settings.webhooks, environ, origin):
        raise ConfigError(problems)
    if problems := _provider_pacing_problems(settings, origin):
        raise ConfigError(problems)
    root = path.parent.resolve() if path is not None else Path.cwd()
    _resolve_paths(settings, root)
    templates_dir = settings.site.templates_dir
    if templates_dir is not None and not templates_dir.is_dir():
        from_env = "templates_dir" in overrides.get("site", {})
        where = f"environment {ENV_PREFIX}SITE__TEMPLATES_DIR" if from_env else origin
        # Silently using the built-ins would hide every override the operator made.
        raise ConfigError([
            f"{where}: site.templates_dir: {templates_dir} is not a directory (it holds your overrides of the "
            "built-in templates: create it, or remove the setting)"
        ])
    settings.source = path
    return settings
