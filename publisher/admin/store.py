"""Operators, their sessions and the audit log in the store: rows in, model objects out.

Only this module knows the ``operators``, ``operator_sessions`` and ``audit_log``
tables; the rules are in :mod:`publisher.admin.service`.  Every function takes the
connection of the caller's transaction, so a change and its audit row commit together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from publisher.admin.model import Actor, AuditEntry, Operator, Role, Session
from publisher.store.schema import audit_log, operator_sessions, operators


def _operator(row: Row) -> Operator:
    return Operator(
        id=row.id, email=row.email, role=Role(row.role), password_hash=row.password_hash,
        totp_secret=row.totp_secret, totp_last_step=row.totp_last_step, failed_logins=row.failed_logins,
        locked_until=row.locked_until, created_at=row.created_at, last_login_at=row.last_login_at,
    )


async def find(conn: AsyncConnection, email: str) -> Operator | None:
    row = (await conn.execute(select(operators).where(operators.c.email == email))).first()
    return None if row is None else _operator(row)


async def get(conn: AsyncConnection, operator_id: int) -> Operator | None:
    row = (await conn.execute(select(operators).where(operators.c.id == operator_id))).first()
    return None if row is None else _operator(row)


async def every(conn: AsyncConnection) -> list[Operator]:
    return [_operator(row) for row in await conn.execute(select(operators).order_by(operators.c.email))]


async def count_admins(conn: AsyncConnection) -> int:
    query = select(func.count()).select_from(operators).where(operators.c.role == Role.ADMIN.value)
    return int((await conn.execute(query)).scalar_one())


async def add(conn: AsyncConnection, email: str, role: Role, password_hash: str, now: datetime) -> int:
    result = await conn.execute(
        insert(operators).values(email=email, role=role.value, password_hash=password_hash, created_at=now)
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]  # one row inserted: its key


async def change(conn: AsyncConnection, operator_id: int, **values: object) -> None:
    """Set columns of one operator's row (``role`` given as a Role is stored as its value)."""
    if isinstance(values.get("role"), Role):
        values["role"] = str(values["role"])
    await conn.execute(update(operators).where(operators.c.id == operator_id).values(**values))


async def count_failure(conn: AsyncConnection, operator_id: int) -> int:
    """One more failed sign-in in a row, counted in the row itself (two at once both count); the new count."""
    result = await conn.execute(
        update(operators).where(operators.c.id == operator_id)
        .values(failed_logins=operators.c.failed_logins + 1).returning(operators.c.failed_logins)
    )
    return int(result.scalar_one())


async def claim_totp_step(conn: AsyncConnection, operator_id: int, step: int) -> bool:
    """Record ``step`` as the operator's last used one, unless it is not newer than it: only
    one request may use a code, however many race with it."""
    result = await conn.execute(
        update(operators)
        .where(operators.c.id == operator_id)
        .where(operators.c.totp_last_step.is_(None) | (operators.c.totp_last_step < step))
        .values(totp_last_step=step)
    )
    return result.rowcount == 1


async def remove(conn: AsyncConnection, operator_id: int) -> None:
    await conn.execute(delete(operator_sessions).where(operator_sessions.c.operator_id == operator_id))
    await conn.execute(delete(operators).where(operators.c.id == operator_id))


# --- sessions ------------------------------------------------------------------------------


async def open_session(
    conn: AsyncConnection, session_id: str, operator_id: int, *, pending_totp: bool, now: datetime, expires_at: datetime
) -> None:
    await conn.execute(insert(operator_sessions).values(
        id=session_id, operator_id=operator_id, pending_totp=int(pending_totp),
        created_at=now, last_seen_at=now, expires_at=expires_at,
    ))


async def session(conn: AsyncConnection, session_id: str) -> Session | None:
    """The session and its operator, in one query (the session's columns labelled ``s_…``)."""
    query = (
        select(*(column.label(f"s_{column.name}") for column in operator_sessions.c), operators)
        .join(operators, operators.c.id == operator_sessions.c.operator_id)
        .where(operator_sessions.c.id == session_id)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return Session(
        id=row.s_id, operator=_operator(row), pending_totp=bool(row.s_pending_totp), created_at=row.s_created_at,
        last_seen_at=row.s_last_seen_at, expires_at=row.s_expires_at,
    )


async def touch_session(conn: AsyncConnection, session_id: str, now: datetime, *, pending_totp: bool | None = None) -> None:
    values: dict[str, object] = {"last_seen_at": now}
    if pending_totp is not None:
        values["pending_totp"] = int(pending_totp)
    await conn.execute(update(operator_sessions).where(operator_sessions.c.id == session_id).values(**values))


async def close_session(conn: AsyncConnection, session_id: str) -> None:
    await conn.execute(delete(operator_sessions).where(operator_sessions.c.id == session_id))


async def close_sessions_of(conn: AsyncConnection, operator_id: int, *, keep: str | None = None) -> None:
    """End every session of the operator, but the one ``keep`` (a session id) if given."""
    query = delete(operator_sessions).where(operator_sessions.c.operator_id == operator_id)
    if keep is not None:
        query = query.where(operator_sessions.c.id != keep)
    await conn.execute(query)


async def close_stale_sessions(conn: AsyncConnection, now: datetime, idle_since: datetime) -> None:
    """Delete the sessions past their absolute end or idle since before ``idle_since``."""
    await conn.execute(delete(operator_sessions).where(
        (operator_sessions.c.expires_at <= now) | (operator_sessions.c.last_seen_at <= idle_since)
    ))


# --- the audit log ---------------------------------------------------------------------------


async def record(
    conn: AsyncConnection, actor: Actor, action: str, target: str, detail: dict[str, object], now: datetime
) -> None:
    await conn.execute(insert(audit_log).values(
        at=now, operator=actor.email, action=action, target=target[:1000],
        detail=json.dumps(detail, sort_keys=True, default=str), remote=actor.remote[:64],
    ))


async def audit_page(conn: AsyncConnection, limit: int, before: int | None = None) -> Sequence[AuditEntry]:
    """The newest ``limit`` entries (older than entry ``before``, if given), newest first."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(audit_log.c.id < before)
    return [
        AuditEntry(id=row.id, at=row.at, operator=row.operator, action=row.action, target=row.target,
                   detail=json.loads(row.detail), remote=row.remote)
        for row in await conn.execute(query)
    ]
