"""The operators' rules: accounts, signing in (password, second factor, lockout), sessions,
and one audit row per action, written in the action's own transaction.

Used by ``publisher operators`` and the dashboard (:mod:`publisher.web.admin`); neither
touches the store itself.  Hashing a password takes tens of milliseconds of CPU by
design, so it runs in a thread: a sign-in must not stall the feeds served beside it.

The answer to a failed sign-in is the same whether the address is unknown, the password
wrong or the account locked, and takes as long (a dummy hash is verified): nothing
tells an attacker which addresses have accounts.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher import clock
from publisher.admin import passwords, store, totp
from publisher.admin.model import Action, Actor, AuditEntry, Operator, OperatorError, Role, Session
from publisher.config import Settings
from subscribers.validation import SubscriberError, normalize_email

T = TypeVar("T")

# How long a password-checked sign-in waits for its second factor.
PENDING_FOR = timedelta(minutes=5)
# A session's last_seen_at is written at most this often (not on every page view).
TOUCH_EVERY = timedelta(minutes=1)
# Argon2 computations at once: each takes 64 MiB and a core for tens of milliseconds, so a
# flood of sign-ins from many addresses queues here instead of taking the machine's memory.
ARGON2_AT_ONCE = 2


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A sign-in that went through: the cookie's ``token``; ``needs_code`` while the
    second factor is owed (the token then opens only the code form)."""

    token: str
    needs_code: bool


def session_id(token: str) -> str:
    """The stored id of a session: its token's SHA-256 (a leaked table signs nobody in)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def operator_email(raw: str) -> str:
    """``raw`` normalized as an operator's address, or OperatorError saying why it isn't one."""
    try:
        return normalize_email(raw)
    except SubscriberError as exc:
        raise OperatorError(str(exc)) from None


class OperatorService:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._argon2_slots = asyncio.Semaphore(ARGON2_AT_ONCE)

    async def _argon2(self, work: Callable[..., T], *args: str) -> T:
        """``work(*args)`` (hashing or verifying) in a thread, at most ARGON2_AT_ONCE at a time."""
        async with self._argon2_slots:
            return await asyncio.to_thread(work, *args)

    @asynccontextmanager
    async def audited(
        self, actor: Actor, action: str, target: str = "", detail: dict[str, object] | None = None
    ) -> AsyncIterator[AsyncConnection]:
        """A transaction whose change is recorded in the audit log, in the same commit.

        Every operator action goes through this: the change and its record stand or
        fall together.  ``detail`` may be filled in by the block; it is written after it.
        """
        details = detail if detail is not None else {}
        async with self.engine.begin() as conn:
            yield conn
            await store.record(conn, actor, action, target, details, clock.now())

    async def record(self, actor: Actor, action: str, target: str = "", detail: dict[str, object] | None = None) -> None:
        """An audit row of its own, for an action that is not one transaction (an import, a
        batch at a time) or changes nothing (an export of personal data)."""
        async with self.audited(actor, action, target, detail):
            pass

    # --- accounts ---------------------------------------------------------------------------

    async def every(self) -> list[Operator]:
        async with self.engine.connect() as conn:
            return await store.every(conn)

    async def get(self, operator_id: int) -> Operator | None:
        async with self.engine.connect() as conn:
            return await store.get(conn, operator_id)

    async def add(self, raw_email: str, role: Role, password: str, actor: Actor) -> Operator:
        email = operator_email(raw_email)
        passwords.check_policy(password)
        hashed = await self._argon2(passwords.hash_password, password)
        try:
            async with self.audited(actor, Action.OPERATOR_ADD, email, {"role": role.value}) as conn:
                operator_id = await store.add(conn, email, role, hashed, clock.now())
        except IntegrityError:
            raise OperatorError(f"there is already an operator {email}") from None
        found = await self.get(operator_id)
        assert found is not None
        return found

    async def set_password(self, raw_email: str, password: str, actor: Actor, *, keep: Session | None = None) -> None:
        """A new password; the operator's sessions end (a changed password is often a leaked one),
        but ``keep``: the browser the operator changed their own password in."""
        passwords.check_policy(password)
        hashed = await self._argon2(passwords.hash_password, password)
        email = operator_email(raw_email)
        detail: dict[str, object] = {"own": True} if keep is not None else {}
        async with self.audited(actor, Action.OPERATOR_PASSWORD, email, detail) as conn:
            operator = await self._existing(conn, email)
            await store.change(conn, operator.id, password_hash=hashed, failed_logins=0, locked_until=None)
            await store.close_sessions_of(conn, operator.id, keep=keep.id if keep is not None else None)

    async def change_own_password(self, session: Session, current: str, new: str, actor: Actor) -> None:
        """The signed-in operator's new password, given their current one (a browser left
        signed in must not be enough to take the account); their other sessions end."""
        passwords.check_policy(new)
        await self.confirm_password(session, current, actor)
        await self.set_password(session.operator.email, new, actor, keep=session)

    async def confirm_password(self, session: Session, password: str, actor: Actor) -> None:
        """Nothing if ``password`` is the session's operator's; else OperatorError.  A wrong one
        counts towards the lockout like a wrong sign-in: a browser left signed in can't be
        used to guess the password at leisure."""
        operator = session.operator
        if await self._argon2(passwords.verify, operator.password_hash, password):
            return
        await self._failed(operator, actor, "current password", clock.now())
        raise OperatorError("the current password is not right")

    async def set_role(self, raw_email: str, role: Role, actor: Actor) -> None:
        email = operator_email(raw_email)
        detail: dict[str, object] = {"role": role.value}
        async with self.audited(actor, Action.OPERATOR_ROLE, email, detail) as conn:
            operator = await self._existing(conn, email)
            detail["was"] = operator.role.value
            if operator.role is Role.ADMIN and role is not Role.ADMIN:
                await self._keep_an_admin(conn)
            await store.change(conn, operator.id, role=role)

    async def remove(self, raw_email: str, actor: Actor) -> None:
        email = operator_email(raw_email)
        async with self.audited(actor, Action.OPERATOR_REMOVE, email) as conn:
            operator = await self._existing(conn, email)
            if operator.role is Role.ADMIN:
                await self._keep_an_admin(conn)
            await store.remove(conn, operator.id)

    async def enable_totp(self, raw_email: str, actor: Actor) -> str:
        """A new second-factor secret for the operator (replacing any), returned once to show."""
        secret = totp.new_secret()
        await self._set_totp(operator_email(raw_email), secret, None, actor, keep=None)
        return secret

    async def enable_own_totp(self, session: Session, secret: str, code: str, actor: Actor) -> None:
        """The signed-in operator's second factor with ``secret`` (made by :func:`totp.new_secret`
        and shown to them), once ``code`` proves their app has it: a secret mistyped into the
        app would otherwise lock them out at their next sign-in.  Their other sessions end."""
        step = totp.matching_step(secret, code, clock.now(), None)
        if step is None:
            raise OperatorError("that code is not the app's current one: check the secret typed into it, and its clock")
        await self._set_totp(session.operator.email, secret, step, actor, keep=session)  # the code is now used

    async def _set_totp(self, email: str, secret: str, last_step: int | None, actor: Actor, *, keep: Session | None) -> None:
        detail: dict[str, object] = {"own": True} if keep is not None else {}
        async with self.audited(actor, Action.OPERATOR_TOTP_ON, email, detail) as conn:
            operator = await self._existing(conn, email)
            await store.change(conn, operator.id, totp_secret=secret, totp_last_step=last_step)
            await store.close_sessions_of(conn, operator.id, keep=keep.id if keep is not None else None)

    async def disable_totp(self, raw_email: str, actor: Actor) -> None:
        email = operator_email(raw_email)
        async with self.audited(actor, Action.OPERATOR_TOTP_OFF, email) as conn:
            operator = await self._existing(conn, email)
            await store.change(conn, operator.id, totp_secret=None, totp_last_step=None)

    async def disable_own_totp(self, session: Session, password: str, actor: Actor) -> None:
        """The signed-in operator's second factor off, given their password (see :meth:`confirm_password`)."""
        await self.confirm_password(session, password, actor)
        await self.disable_totp(session.operator.email, actor)

    async def _existing(self, conn: AsyncConnection, email: str) -> Operator:
        operator = await store.find(conn, email)
        if operator is None:
            raise OperatorError(f"there is no operator {email}")
        return operator

    async def _keep_an_admin(self, conn: AsyncConnection) -> None:
        if await store.count_admins(conn) <= 1:
            raise OperatorError("that is the last admin: make another operator an admin first")

    # --- signing in -------------------------------------------------------------------------

    async def sign_in(self, raw_email: str, password: str, remote: str) -> SignedIn | None:
        """A new session for the right password of an account not locked; None otherwise."""
        now = clock.now()
        try:
            email = operator_email(raw_email)
        except OperatorError:
            email = ""
        async with self.engine.connect() as conn:
            operator = await store.find(conn, email) if email else None
        if operator is None:
            await self._argon2(passwords.verify_nobody, password)
            return None
        matches = await self._argon2(passwords.verify, operator.password_hash, password)
        locked = operator.locked_until is not None and operator.locked_until > now
        if locked or not matches:
            await self._failed(operator, Actor(operator.email, remote), "locked" if locked else "password", now)
            return None
        if passwords.needs_rehash(operator.password_hash):  # made with weaker parameters than today's
            rehashed = await self._argon2(passwords.hash_password, password)
            async with self.engine.begin() as conn:
                await store.change(conn, operator.id, password_hash=rehashed)
        if operator.has_totp:
            return SignedIn(await self._open(operator, pending=True, now=now), needs_code=True)
        return SignedIn(await self._signed_in(operator, Actor(operator.email, remote), now, {}), needs_code=False)

    async def second_factor(self, token: str, code: str, remote: str) -> str | None:
        """The full session's new token for a right code of the session's operator; None otherwise
        (a wrong code counts towards the lockout like a wrong password)."""
        now = clock.now()
        pending = await self.session(token, pending=True)
        # (No secret: the second factor was turned off since the password step; sign in again.)
        if pending is None or pending.operator.totp_secret is None:
            return None
        operator = pending.operator
        actor = Actor(operator.email, remote)
        locked = operator.locked_until is not None and operator.locked_until > now
        step = None if locked else totp.matching_step(pending.operator.totp_secret, code, now, operator.totp_last_step)
        if step is not None:
            async with self.engine.begin() as conn:
                if not await store.claim_totp_step(conn, operator.id, step):
                    step = None
        if step is None:
            await self._failed(operator, actor, "locked" if locked else "code", now)
            return None
        async with self.engine.begin() as conn:
            await store.close_session(conn, pending.id)  # a new token once signed in (no fixation)
        return await self._signed_in(operator, actor, now, {"second_factor": True})

    async def _signed_in(self, operator: Operator, actor: Actor, now: datetime, detail: dict[str, object]) -> str:
        async with self.audited(actor, Action.SIGN_IN, operator.email, detail) as conn:
            await store.change(conn, operator.id, failed_logins=0, locked_until=None, last_login_at=now)
            return await self._open_in(conn, operator, pending=False, now=now)

    async def _failed(self, operator: Operator, actor: Actor, reason: str, now: datetime) -> None:
        """Count a failed attempt; the ``lockout_after``-th in a row locks the account."""
        async with self.audited(actor, Action.SIGN_IN_FAILED, operator.email, {"reason": reason}) as conn:
            if reason == "locked":
                return
            if await store.count_failure(conn, operator.id) < self.settings.admin.lockout_after:
                return
            until = now + self.settings.admin.lockout
            await store.change(conn, operator.id, failed_logins=0, locked_until=until)
            await store.close_sessions_of(conn, operator.id)
            await store.record(conn, actor, Action.LOCKED, operator.email, {"until": until.isoformat()}, now)

    async def _open(self, operator: Operator, *, pending: bool, now: datetime) -> str:
        async with self.engine.begin() as conn:
            return await self._open_in(conn, operator, pending=pending, now=now)

    async def _open_in(self, conn: AsyncConnection, operator: Operator, *, pending: bool, now: datetime) -> str:
        """A new session's token.  The sessions that ended meanwhile (idle, past their end) are
        deleted first: a browser closed without signing out never shows its token again, and
        this keeps the table to the live sessions without a job of its own."""
        await store.close_stale_sessions(conn, now, now - self.settings.admin.session_idle)
        token = secrets.token_urlsafe(32)
        expires_at = now + (PENDING_FOR if pending else self.settings.admin.session_max)
        await store.open_session(conn, session_id(token), operator.id, pending_totp=pending, now=now, expires_at=expires_at)
        return token

    # --- sessions ----------------------------------------------------------------------------

    async def session(self, token: str, *, pending: bool = False, passive: bool = False) -> Session | None:
        """The live session of a cookie's token, or None (unknown, idle too long, past its end).

        A session still owed its second factor is returned only when ``pending`` is
        asked for (the code form); every other page treats it as no session.  A
        ``passive`` request (a page's script reading figures on its own, not a person)
        doesn't count as activity: a tab left open on a running digest's progress must
        not keep an unattended session alive past ``[admin] session_idle_minutes``.
        """
        if not token or len(token) > 100:
            return None
        now = clock.now()
        key = session_id(token)
        async with self.engine.connect() as conn:
            found = await store.session(conn, key)
        if found is None or found.pending_totp != pending:
            return None
        if now >= found.expires_at or now - found.last_seen_at >= self.settings.admin.session_idle:
            async with self.engine.begin() as conn:
                await store.close_session(conn, key)
            return None
        if not passive and now - found.last_seen_at >= TOUCH_EVERY:
            async with self.engine.begin() as conn:
                await store.touch_session(conn, key, now)
        return found

    async def sign_out(self, token: str, actor: Actor) -> None:
        async with self.audited(actor, Action.SIGN_OUT, actor.email) as conn:
            await store.close_session(conn, session_id(token))

    async def audit_page(self, limit: int, before: int | None = None) -> Sequence[AuditEntry]:
        async with self.engine.connect() as conn:
            return await store.audit_page(conn, limit, before)
