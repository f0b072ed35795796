"""Counts kept up to date by the database itself, so the dashboard never scans subscribers or the ledger.

Five tables (:mod:`publisher.store.schema`), each a count of base rows by a time bucket
and a key, written by **database triggers** in the transaction of the change they count:

* ``subscriber_counts (day, status, n)``: subscribers by status, bucketed by the day of
  their last status change (``confirmed_at`` for ``active``, ``created_at`` for ``pending``,
  ``unsubscribed_at`` for those who left; ``created_at`` where that is missing).  The sum
  over all days is the number of subscribers in each status now; the rows of one day are
  that day's growth (confirmations, departures) that still stands.
* ``message_counts (hour, state, n)``: ledger rows by state, bucketed by the hour of
  their ``updated_at`` (a ``sent`` row's hour is when it was sent).  The sum over all hours
  is the queue and the outcomes by state; the rows of one hour are the messages per hour
  by outcome.
* ``digest_counts (digest_id, state, n)``: each digest's ledger rows by state (its
  progress, without counting its rows).
* ``digest_domain_counts (digest_id, domain, state, n)``: the same by recipient domain,
  for the settled states only (:data:`SETTLED`: sent, deferred, failed, cancelled): a
  digest's outcomes per provider, without grouping its rows (migration 0022).
  Claiming a row (pending → sending) moves none of them, so the claims, half of the
  send path's writes, never look a reader's domain up for it.
* ``domain_counts (hour, domain, kind, n)``: per recipient domain and hour, the messages
  ``sent`` and the readers who ``complained`` or ``bounced`` (hard), what the circuit
  breakers (:mod:`publisher.delivery.gates`) and the per-provider rates read.

Every count is of *rows as they are now*, by columns they carry, so a full recount from
the base tables (:func:`rebuild`, ``publisher db rebuild-aggregates``) gives exactly the
same numbers: a trigger subtracts a row's old bucket and adds its new one.

Why triggers, not increments in the application: a subscriber's status and a ledger
row's state change in many places (sign-up, confirmation, the API, imports, bounces and
complaints, erasure, the planner's ``INSERT … SELECT``, claims, outcomes, cancels, the
gates' holds, resends), and a trigger counts every one of them, those to come and an
operator's hand-written SQL included.  On PostgreSQL the ledger triggers are
*statement-level* with transition tables: a batch of 500 outcomes makes one grouped
``INSERT … ON CONFLICT DO UPDATE`` per table, not 500.  SQLite has row-level triggers
only; each is an in-process UPSERT on a small table (SQLite has one writer at a time
anyway).  Concurrent writers on PostgreSQL add to the same counter rows under ``ON
CONFLICT DO UPDATE``'s row lock, so no increment is lost.  Those rows are few and hot
(this hour's ``sent``, ``sending``, ``deferred``), and a transaction of several
statements (an outcome batch: the sent rows, then the others) would lock them in another
order than a claim does: two nodes could deadlock.  So every trigger function first
takes one transaction-level advisory lock (:data:`COUNTS_LOCK`): the writers of counted
changes queue for it once, at their first counted change, until they commit, which
they did for the hot rows anyway.

Providers: the triggers count by recipient *domain* (plain SQL, no configuration), and
readers map domains to providers with :class:`publisher.delivery.providers.Providers`
when they read.  So a change to ``[providers]`` applies at once to every count, past ones
included, and nothing needs rebuilding; the price is that per-provider reads are
O(hours × domains that received mail in them), not O(providers).  A message's domain is
its reader's when it is counted: publisher never changes an address, but one changed by
hand leaves that reader's past messages under the old domain (and a later change of a
row counted under the old one in ``digest_domain_counts`` taken from the new) until a rebuild.

A change to the trigger definitions here needs a new migration that drops and creates
them again (:func:`drop`, :func:`create`); migration 0021 installed them first.
"""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

# PostgreSQL's advisory lock of changing the counts ("pubc"), beside the keys of
# publisher.store.db.Exclusive (taken by the triggers, so not one of those).
COUNTS_LOCK = 0x70756263

# The status timestamp a subscriber row is counted under, per row alias ("NEW", "OLD", "s").
_SUBSCRIBER_AT = (
    "CASE {r}.status WHEN 'active' THEN COALESCE({r}.confirmed_at, {r}.created_at) "
    "WHEN 'pending' THEN {r}.created_at ELSE COALESCE({r}.unsubscribed_at, {r}.created_at) END"
)
SETTLED = ("sent", "deferred", "failed", "cancelled")  # the states digest_domain_counts counts
_SETTLED_SQL = "state IN ('sent', 'deferred', 'failed', 'cancelled')"
_TABLES = ("subscriber_counts", "message_counts", "digest_counts", "digest_domain_counts", "domain_counts")

# --- SQLite: row-level triggers, times stored as SQLAlchemy stores them ("YYYY-MM-DD HH:MM:SS.ffffff").
_SQLITE_DAY = "strftime('%Y-%m-%d 00:00:00.000000', {})"
_SQLITE_HOUR = "strftime('%Y-%m-%d %H:00:00.000000', {})"
_SQLITE_DOMAIN = "substr({r}.email, instr({r}.email, '@') + 1)"


def _sqlite_add(table: str, keys: dict[str, str], n: int, when: str = "") -> str:
    columns = ", ".join(keys)
    where = f" WHERE {when}" if when else " WHERE true"  # WHERE: SQLite's UPSERT after a SELECT needs one
    return (
        f"INSERT INTO {table} ({columns}, n) SELECT {', '.join(keys.values())}, {n}{where} "
        f"ON CONFLICT ({columns}) DO UPDATE SET n = {table}.n + excluded.n;"
    )


def _sqlite_subscriber(r: str, n: int) -> list[str]:
    at = _SUBSCRIBER_AT.format(r=r)
    return [
        _sqlite_add("subscriber_counts", {"day": _SQLITE_DAY.format(at), "status": f"{r}.status"}, n),
        _sqlite_add("domain_counts", {"hour": _SQLITE_HOUR.format(f"{r}.unsubscribed_at"),
                                      "domain": _SQLITE_DOMAIN.format(r=r), "kind": f"{r}.status"}, n,
                    f"{r}.status IN ('complained', 'bounced') AND {r}.unsubscribed_at IS NOT NULL"),
    ]


def _sqlite_delivery(r: str, n: int, keyed: str = "") -> list[str]:
    """``keyed``: in an UPDATE trigger, the condition that the row's digest, reader or state
    changed (a retry's new time alone moves no digest count)."""
    hour = _SQLITE_HOUR.format(f"{r}.updated_at")
    domain = f"(SELECT substr(email, instr(email, '@') + 1) FROM subscribers WHERE id = {r}.subscriber_id)"
    return [
        _sqlite_add("message_counts", {"hour": hour, "state": f"{r}.state"}, n),
        _sqlite_add("digest_counts", {"digest_id": f"{r}.digest_id", "state": f"{r}.state"}, n),
        _sqlite_add("digest_domain_counts", {"digest_id": f"{r}.digest_id", "domain": domain, "state": f"{r}.state"},
                    n, f"{r}.{_SETTLED_SQL}" + (f" AND ({keyed})" if keyed else "")),
        _sqlite_add("domain_counts", {"hour": hour, "domain": domain, "kind": "'sent'"}, n, f"{r}.state = 'sent'"),
    ]


_KEY_CHANGED = "OLD.state IS NOT NEW.state OR OLD.subscriber_id IS NOT NEW.subscriber_id OR OLD.digest_id IS NOT NEW.digest_id"


def _sqlite_triggers() -> list[str]:
    def trigger(name: str, event: str, body: list[str], when: str = "") -> str:
        condition = f" WHEN {when}" if when else ""
        return f"CREATE TRIGGER {name} AFTER {event}{condition} BEGIN {' '.join(body)} END"

    return [
        trigger("subscriber_counts_insert", "INSERT ON subscribers", _sqlite_subscriber("NEW", 1)),
        trigger("subscriber_counts_update",
                "UPDATE OF email, status, created_at, confirmed_at, unsubscribed_at ON subscribers FOR EACH ROW",
                _sqlite_subscriber("OLD", -1) + _sqlite_subscriber("NEW", 1)),
        trigger("subscriber_counts_delete", "DELETE ON subscribers", _sqlite_subscriber("OLD", -1)),
        trigger("message_counts_insert", "INSERT ON deliveries", _sqlite_delivery("NEW", 1)),
        trigger("message_counts_update", "UPDATE OF state, updated_at, subscriber_id, digest_id ON deliveries FOR EACH ROW",
                _sqlite_delivery("OLD", -1, _KEY_CHANGED) + _sqlite_delivery("NEW", 1, _KEY_CHANGED),
                "OLD.state IS NOT NEW.state OR OLD.updated_at IS NOT NEW.updated_at "
                "OR OLD.subscriber_id IS NOT NEW.subscriber_id OR OLD.digest_id IS NOT NEW.digest_id"),
        trigger("message_counts_delete", "DELETE ON deliveries", _sqlite_delivery("OLD", -1)),
    ]


# --- PostgreSQL: plpgsql functions; statement-level (transition tables) where a statement writes many rows.
_PG_DAY = "(date_trunc('day', ({}) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
_PG_HOUR = "(date_trunc('hour', ({}) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


def _pg_add(table: str, keys: dict[str, str], rows: str, where: str = "") -> str:
    """One grouped UPSERT of the ``rows`` (a FROM clause with a signed ``n`` per row), by ``keys``."""
    columns = ", ".join(keys)
    condition = f" WHERE {where}" if where else ""
    return (
        f"INSERT INTO {table} ({columns}, n) SELECT {', '.join(keys.values())}, sum(n) FROM {rows}{condition} "
        f"GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))} HAVING sum(n) <> 0 "
        f"ORDER BY {', '.join(str(i + 1) for i in range(len(keys)))} "  # one lock order: no deadlock between writers
        f"ON CONFLICT ({columns}) DO UPDATE SET n = {table}.n + excluded.n;"
    )


def _pg_subscriber_rows(sources: list[tuple[str, int]]) -> str:
    """The subscribers of the transition tables (``sources``: table, sign) as one signed row set."""
    at = _SUBSCRIBER_AT.format(r="t")
    parts = [f"SELECT t.status, t.email, t.unsubscribed_at, {at} AS at, {sign} AS n FROM {table} t"
             for table, sign in sources]
    return f"({' UNION ALL '.join(parts)}) AS s"


def _pg_delivery_rows(sources: list[tuple[str, int]]) -> str:
    parts = [f"SELECT t.digest_id, t.state, t.subscriber_id, t.updated_at, {sign} AS n FROM {table} t"
             for table, sign in sources]
    return f"({' UNION ALL '.join(parts)}) AS d"


def _pg_subscriber_body(rows: str) -> str:
    return (
        _pg_add("subscriber_counts", {"day": _PG_DAY.format("s.at"), "status": "s.status"}, rows)
        + _pg_add("domain_counts", {"hour": _PG_HOUR.format("s.unsubscribed_at"),
                                    "domain": "split_part(s.email, '@', 2)", "kind": "s.status"}, rows,
                  "s.status IN ('complained', 'bounced') AND s.unsubscribed_at IS NOT NULL")
    )


def _pg_delivery_body(rows: str) -> str:
    return (
        _pg_add("message_counts", {"hour": _PG_HOUR.format("d.updated_at"), "state": "d.state"}, rows)
        + _pg_add("digest_counts", {"digest_id": "d.digest_id", "state": "d.state"}, rows)
        + _pg_add("digest_domain_counts", {"digest_id": "d.digest_id", "domain": "split_part(x.email, '@', 2)",
                                           "state": "d.state"}, f"{rows} JOIN subscribers x ON x.id = d.subscriber_id",
                  f"d.{_SETTLED_SQL}")
        + _pg_add("domain_counts", {"hour": _PG_HOUR.format("d.updated_at"),
                                    "domain": "split_part(x.email, '@', 2)", "kind": "'sent'"},
                  f"{rows} JOIN subscribers x ON x.id = d.subscriber_id", "d.state = 'sent'")
    )


def _pg_function(name: str, body: str) -> str:
    return (f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"PERFORM pg_advisory_xact_lock({COUNTS_LOCK}); {body} RETURN NULL; END $$")


def _pg_statements() -> list[str]:
    # A ledger UPDATE that changes neither state nor time (a lease renewal) counts nothing:
    # the transition tables are joined by key and only changed rows are taken.
    changed = ("(SELECT o.* FROM old_rows o JOIN new_rows w USING (digest_id, subscriber_id) "
               "WHERE o.state IS DISTINCT FROM w.state OR o.updated_at IS DISTINCT FROM w.updated_at)")
    changed_new = changed.replace("SELECT o.*", "SELECT w.*")
    # A row-level trigger on the subscribers' UPDATE: it can name its columns (a statement-level
    # one with transition tables can't), so the planner's cursor updates never fire it.
    row_update = (
        _pg_subscriber_body(_pg_subscriber_rows([("(SELECT OLD.*) ", -1), ("(SELECT NEW.*) ", 1)]))
    )
    return [
        _pg_function("subscriber_counts_insert",
                     _pg_subscriber_body(_pg_subscriber_rows([("new_rows", 1)]))),
        _pg_function("subscriber_counts_update", row_update),
        _pg_function("subscriber_counts_delete",
                     _pg_subscriber_body(_pg_subscriber_rows([("old_rows", -1)]))),
        _pg_function("message_counts_insert", _pg_delivery_body(_pg_delivery_rows([("new_rows", 1)]))),
        _pg_function("message_counts_update",
                     _pg_delivery_body(_pg_delivery_rows([(changed, -1), (changed_new, 1)]))),
        _pg_function("message_counts_delete", _pg_delivery_body(_pg_delivery_rows([("old_rows", -1)]))),
        "CREATE TRIGGER subscriber_counts_insert AFTER INSERT ON subscribers REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION subscriber_counts_insert()",
        "CREATE TRIGGER subscriber_counts_update "
        "AFTER UPDATE OF email, status, created_at, confirmed_at, unsubscribed_at ON subscribers FOR EACH ROW "
        "WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.email IS DISTINCT FROM NEW.email "
        "OR OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.confirmed_at IS DISTINCT FROM NEW.confirmed_at "
        "OR OLD.unsubscribed_at IS DISTINCT FROM NEW.unsubscribed_at) EXECUTE FUNCTION subscriber_counts_update()",
        "CREATE TRIGGER subscriber_counts_delete AFTER DELETE ON subscribers REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION subscriber_counts_delete()",
        "CREATE TRIGGER message_counts_insert AFTER INSERT ON deliveries REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION message_counts_insert()",
        "CREATE TRIGGER message_counts_update AFTER UPDATE ON deliveries "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION message_counts_update()",
        "CREATE TRIGGER message_counts_delete AFTER DELETE ON deliveries REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION message_counts_delete()",
    ]


_TRIGGERS = ("subscriber_counts_insert", "subscriber_counts_update", "subscriber_counts_delete",
             "message_counts_insert", "message_counts_update", "message_counts_delete")


def create(conn: Connection) -> None:
    """Install the triggers (a migration calls this on its connection)."""
    for statement in _pg_statements() if conn.dialect.name == "postgresql" else _sqlite_triggers():
        conn.execute(text(statement))


def drop(conn: Connection) -> None:
    """Remove the triggers (and on PostgreSQL their functions)."""
    for name in _TRIGGERS:
        table = "subscribers" if name.startswith("subscriber") else "deliveries"
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
            conn.execute(text(f"DROP FUNCTION IF EXISTS {name}()"))
        else:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))


def _recount_statements(dialect: str) -> list[tuple[str, str]]:
    """The counts from the base tables, as the triggers would have written them: (table, statement)."""
    day, hour = (_PG_DAY, _PG_HOUR) if dialect == "postgresql" else (_SQLITE_DAY, _SQLITE_HOUR)
    domain = "split_part({}, '@', 2)" if dialect == "postgresql" else "substr({0}, instr({0}, '@') + 1)"
    at = _SUBSCRIBER_AT.format(r="s")
    return [
        ("subscriber_counts", f"INSERT INTO subscriber_counts (day, status, n) SELECT {day.format(at)}, s.status, count(*) "
         f"FROM subscribers s GROUP BY 1, 2"),
        ("message_counts", f"INSERT INTO message_counts (hour, state, n) SELECT {hour.format('d.updated_at')}, d.state, "
         f"count(*) FROM deliveries d GROUP BY 1, 2"),
        ("digest_counts", "INSERT INTO digest_counts (digest_id, state, n) SELECT d.digest_id, d.state, count(*) "
         "FROM deliveries d GROUP BY 1, 2"),
        ("digest_domain_counts", f"INSERT INTO digest_domain_counts (digest_id, domain, state, n) "
         f"SELECT d.digest_id, {domain.format('s.email')}, d.state, count(*) "
         f"FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.{_SETTLED_SQL} GROUP BY 1, 2, 3"),
        ("domain_counts", f"INSERT INTO domain_counts (hour, domain, kind, n) "
         f"SELECT {hour.format('d.updated_at')}, {domain.format('s.email')}, 'sent', count(*) "
         f"FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.state = 'sent' GROUP BY 1, 2, 3"),
        ("domain_counts", f"INSERT INTO domain_counts (hour, domain, kind, n) "
         f"SELECT {hour.format('s.unsubscribed_at')}, {domain.format('s.email')}, s.status, count(*) "
         f"FROM subscribers s WHERE s.status IN ('complained', 'bounced') AND s.unsubscribed_at IS NOT NULL "
         f"GROUP BY 1, 2, 3"),
    ]


def rebuild(conn: Connection) -> None:
    """Recount every aggregate from the base tables, in the caller's transaction.

    On PostgreSQL the base tables are locked against writes (``SHARE`` mode) for the
    recount, so no change slips in between the recount and the triggers; on SQLite the
    transaction's write lock does that."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE subscribers, deliveries IN SHARE MODE"))
    # A migration older than one of the tables (0021, before 0022) recounts those it has.
    present = {table for table in _TABLES if inspect(conn).has_table(table)}
    for table in _TABLES:
        if table in present:
            conn.execute(text(f"DELETE FROM {table}"))
    for table, statement in _recount_statements(conn.dialect.name):
        if table in present:
            conn.execute(text(statement))
