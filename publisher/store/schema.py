"""The tables, as SQLAlchemy Core: the ledger of what was published and who got what.

Everything the daemon must remember across restarts lives here (principle 3 of
ARCHITECTURE.md: the ledger is the truth).  Migrations in ``migrations/`` create
exactly these tables; a test checks the two never drift apart.  The module is long
because it is one schema: every table in one place, beside the comment on what it keeps.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

from publisher.content.model import MAX_ID_LENGTH, MAX_SLUG_LENGTH


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (naive storage) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

# One row per article ever seen.  ``seq`` orders articles by when the publisher first saw
# them (never by their published date), so subscribers' cursors can say "everything up to
# seq N has been put in one of your digests" and a back-dated post still goes out once.
articles = Table(
    "articles",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(MAX_ID_LENGTH), nullable=False, unique=True),
    Column("slug", String(MAX_SLUG_LENGTH), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("data", Text, nullable=False),  # Article.to_dict() as JSON
    Column("tags", Text, nullable=False, server_default="[]"),  # JSON list, for topic matching
    Column("published", UTCDateTime(), nullable=False),
    Column("updated", UTCDateTime(), nullable=False),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
    # Which source offers it ("markdown:<dir>", "feed:<url>", "api"), and since when it
    # no longer does (a deleted Markdown file): gone from feeds and pages, never unsent.
    Column("source", String(1000), nullable=False, server_default=""),
    Column("removed_at", UTCDateTime(), nullable=True),
    # When an operator unpublished it (publisher articles remove, DELETE /api/articles/…):
    # its source offering it unchanged does not bring it back; an edit does.
    Column("withdrawn_at", UTCDateTime(), nullable=True),
)

# Articles whose date is still to come (scheduled).  They stay out of ``articles`` until
# their time, so they take no ``seq``: a newer article that moves the subscribers'
# cursors past them meanwhile can't make them never go out.  When their time comes they
# move into ``articles`` (with a new ``seq``: news).  ``data`` and ``content_hash`` are
# as in ``articles``.
scheduled_articles = Table(
    "scheduled_articles",
    metadata,
    Column("id", String(MAX_ID_LENGTH), primary_key=True),
    Column("source", String(1000), nullable=False),
    Column("publish_at", UTCDateTime(), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("data", Text, nullable=False),
    Column("first_seen_at", UTCDateTime(), nullable=False),
)
Index("ix_scheduled_articles_publish_at", scheduled_articles.c.publish_at)

# What a scan of a Markdown directory last found in each file (``source`` as in
# ``articles``, ``path`` relative to the directory), so the next scan reads only the files
# whose size or mtime changed and parses only those whose bytes (``content_hash``) did:
# the rows are written in the transaction that stores the files' articles, so every node
# scanning the same directory shares one truth.  ``parsed_with`` fingerprints what else
# made the article (the site URL, the content limits, the publisher's version);
# ``outcome`` is what the file gave (article, draft, broken, lost: a duplicate id or slug,
# refused: another source has its id), with the article's ``article_id`` and ``slug``
# and the parser's ``problems`` (JSON) that each scan reports again.
source_files = Table(
    "source_files",
    metadata,
    Column("source", String(1000), nullable=False),
    Column("path", String(1000), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("parsed_with", String(64), nullable=False),
    Column("outcome", String(10), nullable=False),
    Column("article_id", String(MAX_ID_LENGTH), nullable=True),
    Column("slug", String(MAX_SLUG_LENGTH), nullable=True),
    Column("problems", Text, nullable=True),
    PrimaryKeyConstraint("source", "path"),
)
# A scan the file watcher told of loads only the rows it needs (store/source_files.py: load_told).
Index("ix_source_files_article_id", source_files.c.source, source_files.c.article_id)
Index("ix_source_files_slug", source_files.c.source, source_files.c.slug)
Index("ix_source_files_outcome", source_files.c.source, source_files.c.outcome)

# An address column: on PostgreSQL in the "C" collation, whose order is by code point as
# SQLite's default is; a database collation such as en_US skips punctuation, and no
# prefix range of its index holds every address that starts with the prefix.
ADDRESS = String(320).with_variant(String(320, collation="C"), "postgresql")

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Normalized, lower-cased; compared by code point everywhere (PostgreSQL's "C" collation,
    # SQLite's default), so an address prefix is one range of the unique index.
    Column("email", ADDRESS, nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("status", String(20), nullable=False),  # pending | active | unsubscribed | bounced | complained
    Column("cadence", String(10), nullable=False),  # instant | daily | weekly
    Column("topics", Text, nullable=False, server_default="[]"),  # sorted JSON list; [] = all
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("send_hour", Integer, nullable=True),
    Column("send_weekday", String(3), nullable=True),  # mon … sun for weekly digests; NULL: [digest] weekly_day
    Column("source", String(20), nullable=False),  # cli | web | api | import
    Column("created_at", UTCDateTime(), nullable=False),
    Column("confirmed_at", UTCDateTime(), nullable=True),
    Column("confirmed_source", String(20), nullable=True),  # web (the emailed link) | api | import | cli
    Column("unsubscribed_at", UTCDateTime(), nullable=True),
    # Soft bounces (mailbox full, ...) since the last delivery that went through;
    # [delivery] soft_bounce_limit of them suppress the address.
    Column("soft_bounces", Integer, nullable=False, server_default="0"),
    # seq of the newest article already planned into one of this subscriber's digests.
    Column("article_cursor", Integer, nullable=False, server_default="0"),
    # The last daily/weekly send slot this subscriber was planned for (publisher.digest.cadence).
    Column("last_slot", UTCDateTime(), nullable=True),
)
Index("ix_subscribers_plan", subscribers.c.status, subscribers.c.cadence, subscribers.c.article_cursor)
Index("ix_subscribers_slots", subscribers.c.status, subscribers.c.cadence, subscribers.c.timezone, subscribers.c.send_hour)
Index("ix_subscribers_listing", subscribers.c.status, subscribers.c.cadence, subscribers.c.id)  # the dashboard's list

# Addresses that an import, the API or the CLI must not (re-)add: unsubscribed, bounced,
# complained, suppressed by the operator, or erased.  Keyed by the SHA-256 of the
# normalized address, so an erased subscriber's address is not kept in clear text;
# only the person's own double opt-in lifts an entry.
suppressions = Table(
    "suppressions",
    metadata,
    Column("email_hash", String(64), primary_key=True),
    Column("reason", String(20), nullable=False),  # unsubscribed | bounced | complained | manual | erased
    Column("created_at", UTCDateTime(), nullable=False),
)

digests = Table(
    "digests",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("cadence", String(10), nullable=False),
    Column("article_seqs", Text, nullable=False),  # JSON list of articles.seq, newest first
    Column("status", String(20), nullable=False),  # sending | paused | finished
    Column("pause_reason", Text, nullable=True),  # why a paused digest stopped (publisher status)
    Column("created_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    # While the plan is written in batches: the last subscriber id planned; NULL once complete.
    Column("plan_cursor", Integer, nullable=True),
)

# The delivery ledger: one row per (digest, subscriber).
# pending → sending → sent | deferred (retry_at) | failed (last_reply) | cancelled
deliveries = Table(
    "deliveries",
    metadata,
    Column("digest_id", String(64), ForeignKey("digests.id"), primary_key=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id"), primary_key=True),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("retry_at", UTCDateTime(), nullable=True),
    Column("last_reply", Text, nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    # A row in ``sending`` is claimed by one delivery run (``claimed_by``) until
    # ``lease_until``; the run renews the lease while it works, so an expired lease
    # means its node died and another may take the row over (publisher.delivery.ledger).
    Column("claimed_by", String(200), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
)
Index("ix_deliveries_state", deliveries.c.digest_id, deliveries.c.state)
Index("ix_deliveries_subscriber", deliveries.c.subscriber_id, deliveries.c.updated_at)  # one subscriber's history

# Each running daemon (a node): its heartbeat, and what ``publisher status`` shows of it
# (next job runs, last scan, recent errors) as JSON.
nodes = Table(
    "nodes",
    metadata,
    Column("id", String(200), primary_key=True),  # host:pid:start
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("role", String(20), nullable=False),  # leader | standby | worker
    Column("started_at", UTCDateTime(), nullable=False),
    Column("seen_at", UTCDateTime(), nullable=False),
    Column("state", Text, nullable=False, server_default="{}"),
)

# Facts about the store itself, by key: ``site_url`` is the [site] url its articles and
# feeds were last published under (canonical URLs and feed entry ids derive from it).
meta = Table(
    "meta",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

# The feeds' index of the published articles (publisher.store.feed_index), kept in step
# with ``articles`` by the feed shelf: one row per published article, with the content
# hash and ``changed_at`` it was indexed at (a row that no longer matches is stale), its
# date (the feeds' order), and its prepared feed entry once rendered (JSON; "" when it
# can't be rendered) under ``version``, a digest of the templates and settings that
# shape entries: another version is rendered again.
feed_entries = Table(
    "feed_entries",
    metadata,
    Column("article_id", String(MAX_ID_LENGTH), primary_key=True),
    Column("published", UTCDateTime(), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
    Column("entry", Text, nullable=True),
    Column("version", String(64), nullable=True),
)
Index("ix_feed_entries_published", feed_entries.c.published)

# One row per (indexed article, tag slug), with the article's spelling of the tag and its
# date: a tag feed's newest articles are one LIMIT query on (slug, published).
feed_tags = Table(
    "feed_tags",
    metadata,
    Column("article_id", String(MAX_ID_LENGTH), primary_key=True),
    Column("slug", Text, primary_key=True),
    Column("tag", Text, nullable=False),
    Column("published", UTCDateTime(), nullable=False),
)
Index("ix_feed_tags_slug", feed_tags.c.slug, feed_tags.c.published)

# The feed documents the shelf last built (publisher.store.feed_index), so a fresh
# process or another node serves them without rendering or compressing again: one row
# per document (path), with its bytes, gzip twin and validators, and what its feed was
# built from: ``input``, a digest of the channel's settings and the articles it went
# through, and how many it went through (a feed asks for as many at its next build).
feed_documents = Table(
    "feed_documents",
    metadata,
    Column("path", Text, primary_key=True),
    Column("slug", Text, nullable=False),  # the feed's tag slug ("" for the site's)
    Column("input", String(64), nullable=False),
    Column("went_through", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("gzipped", LargeBinary, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("etag", Text, nullable=False),
    Column("last_modified", UTCDateTime(), nullable=False),
)

# Outgoing webhooks (publisher.webhooks).  ``webhook_events`` is the outbox: one row per
# event, written in the transaction of the change it reports, with one row in
# ``webhook_deliveries`` per registered endpoint (``webhook_endpoints``, by URL) that
# wants it; a delivery row goes when its endpoint acknowledges it, an event when no
# delivery row is left.  ``key`` (``subscriber:<id>``, …) orders deliveries: an event is
# not sent while an earlier one of its key is owed to the same endpoint.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("type", String(40), nullable=False),
    Column("key", String(200), nullable=False),
    Column("data", Text, nullable=False),  # JSON object
    Column("created_at", UTCDateTime(), nullable=False),
    sqlite_autoincrement=True,  # seq only grows, also once the outbox was emptied (as on PostgreSQL)
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("url", String(1000), primary_key=True),
    Column("events", Text, nullable=False),  # JSON list of the event types it wants; [] = all
    Column("last_error", Text, nullable=True),
    Column("last_error_at", UTCDateTime(), nullable=True),
    Column("last_success_at", UTCDateTime(), nullable=True),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("endpoint", String(1000), primary_key=True),  # no foreign key: see publisher.webhooks.outbox
    Column("event_seq", Integer, ForeignKey("webhook_events.seq"), primary_key=True),
    Column("key", String(200), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_at", UTCDateTime(), nullable=False),
    Column("last_error", Text, nullable=True),
    # Claimed by one dispatch pass until ``lease_until`` (as deliveries.claimed_by).
    Column("claimed_by", String(200), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
)
Index("ix_webhook_deliveries_key", webhook_deliveries.c.endpoint, webhook_deliveries.c.key, webhook_deliveries.c.event_seq)

# Clicks on digest links, counted per link per digest ([tracking] clicks = "aggregate";
# publisher.tracking): the n-th distinct link of the digest's HTML, its target, and how
# many times it was followed.  A row appears at a link's first click.  Nothing in it
# says who clicked.
link_clicks = Table(
    "link_clicks",
    metadata,
    Column("digest_id", String(64), primary_key=True),
    Column("n", Integer, primary_key=True),
    Column("url", Text, nullable=False),
    Column("clicks", BigInteger, nullable=False),
)

# The cluster's send rates (publisher.delivery.cluster_rate), one row per bucket: "" for
# ``[delivery] rate``, ``provider:<name>`` for a provider's.  ``next_slot`` is the first
# moment not yet reserved by any node (a GCRA's theoretical arrival time), on the
# database's clock.  Used on PostgreSQL only: on SQLite one process sends at a time.
send_rates = Table(
    "send_rates",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("next_slot", UTCDateTime(), nullable=False),
)

# Mailbox providers whose deliveries a circuit breaker paused (publisher.delivery.gates):
# paused while ``reason`` is set, since ``since``; ``publisher resume --provider`` clears
# the reason and sets ``resumed_at``, after which the breaker counts only newer complaints
# and bounces (the old ones must not trip it again at once).
provider_pauses = Table(
    "provider_pauses",
    metadata,
    Column("provider", String(40), primary_key=True),
    Column("reason", Text, nullable=True),
    Column("since", UTCDateTime(), nullable=True),
    Column("resumed_at", UTCDateTime(), nullable=True),
)
# The messages sent in a period and those being sent (warm-up allowances, breaker rates).
Index("ix_deliveries_sent", deliveries.c.state, deliveries.c.updated_at)

# The operators of the dashboard at /admin/ (publisher.admin): one row per account.
# ``password_hash`` is Argon2id's encoded string (parameters and salt in it);
# ``totp_secret`` the base32 key of their authenticator app (NULL: no second factor) and
# ``totp_last_step`` the last time step a code was accepted for (no code is taken twice).
# ``failed_logins`` counts failed sign-ins since the last good one; ``[admin]
# lockout_after`` of them set ``locked_until``.
operators = Table(
    "operators",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Normalized, lower-cased; compared by code point everywhere (PostgreSQL's "C" collation,
    # SQLite's default), so an address prefix is one range of the unique index.
    Column("email", ADDRESS, nullable=False, unique=True),
    Column("role", String(10), nullable=False),  # viewer | editor | admin
    Column("password_hash", Text, nullable=False),
    Column("totp_secret", String(64), nullable=True),
    Column("totp_last_step", BigInteger, nullable=True),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_login_at", UTCDateTime(), nullable=True),
)

# Signed-in operators' sessions.  ``id`` is the SHA-256 of the cookie's random token, so
# the table alone can't be used to sign in; ``expires_at`` is the absolute end ([admin]
# session_max_hours) and ``last_seen_at`` + session_idle_minutes the idle one.  A session
# that has not yet passed its second factor has ``pending_totp`` set and opens nothing
# but the code form.  Removing an operator removes their sessions.
operator_sessions = Table(
    "operator_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("operator_id", Integer, ForeignKey("operators.id", ondelete="CASCADE"), nullable=False),
    Column("pending_totp", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)
Index("ix_operator_sessions_operator", operator_sessions.c.operator_id)

# Every operator action, dashboard and ``publisher operators`` alike (who, what, when),
# written in the transaction of the change itself.  ``operator`` is the email as it was,
# kept when the account is removed; ``detail`` a JSON object; ``remote`` the client's
# address ("" from the command line).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("operator", String(320), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(1000), nullable=False, server_default=""),
    Column("detail", Text, nullable=False, server_default="{}"),
    Column("remote", String(64), nullable=False, server_default=""),
)
Index("ix_audit_log_at", audit_log.c.at)

# Counts the dashboard reads instead of scanning subscribers and the ledger, kept by
# database triggers in the transaction of each change (publisher.store.aggregates, which
# says what each counts): rows as they are now, by status or state and the time bucket of
# their last change, and per recipient domain the messages sent, complaints and hard bounces.
subscriber_counts = Table(
    "subscriber_counts",
    metadata,
    Column("day", UTCDateTime(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("day", "status"),
)

message_counts = Table(
    "message_counts",
    metadata,
    Column("hour", UTCDateTime(), nullable=False),
    Column("state", String(12), nullable=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("hour", "state"),
)
Index("ix_message_counts_state", message_counts.c.state, message_counts.c.hour)  # the queue: open states

digest_counts = Table(
    "digest_counts",
    metadata,
    Column("digest_id", String(64), nullable=False),  # no foreign key: counts, not ledger
    Column("state", String(12), nullable=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("digest_id", "state"),
)

# Each digest's ledger rows by recipient domain and state: its counts by mailbox provider
# (the dashboard's digest page), without grouping the digest's rows.
digest_domain_counts = Table(
    "digest_domain_counts",
    metadata,
    Column("digest_id", String(64), nullable=False),  # no foreign key: counts, not ledger
    Column("domain", String(320), nullable=False),
    Column("state", String(12), nullable=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("digest_id", "domain", "state"),
)

domain_counts = Table(
    "domain_counts",
    metadata,
    Column("hour", UTCDateTime(), nullable=False),
    Column("domain", String(320), nullable=False),
    Column("kind", String(20), nullable=False),  # sent | complained | bounced
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("hour", "domain", "kind"),
)
