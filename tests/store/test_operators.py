"""Operator accounts in the store (SQLite and PostgreSQL): sign-in, the second factor, the
lockout, sessions' idle and absolute ends (a moved clock), the last admin, the audit log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from publisher import clock
from publisher.admin import totp
from publisher.admin.model import Action, Actor, OperatorError, Role
from publisher.admin.service import session_id
from publisher.app import Publisher
from publisher.store.schema import audit_log, operator_sessions, operators

PASSWORD = "a long enough password"
CLI = Actor("cli:tester")


@pytest.fixture
def moment(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The time every part of the publisher sees; a test moves it by setting ``moment[0]``."""
    now = [datetime(2026, 12, 6, 12, 0, 5, tzinfo=UTC)]
    monkeypatch.setattr(clock, "now", lambda: now[0])
    return now


async def audit_actions(publisher: Publisher) -> list[tuple[str, str, str]]:
    async with publisher.engine.connect() as conn:
        rows = await conn.execute(select(audit_log.c.operator, audit_log.c.action, audit_log.c.target).order_by(audit_log.c.id))
        return [tuple(row) for row in rows]


async def test_an_operator_signs_in_with_the_password_and_every_change_is_audited(publisher: Publisher) -> None:
    service = publisher.operators
    added = await service.add("Ann@Example.org", Role.EDITOR, PASSWORD, CLI)
    assert (added.email, added.role) == ("ann@example.org", Role.EDITOR)
    assert added.password_hash.startswith("$argon2id$") and PASSWORD not in added.password_hash
    assert await service.sign_in("ann@example.org", "wrong password here", "192.0.2.1") is None
    signed = await service.sign_in("ANN@example.org", PASSWORD, "192.0.2.1")
    assert signed is not None and not signed.needs_code
    session = await service.session(signed.token)
    assert session is not None and session.operator.email == "ann@example.org"
    async with publisher.engine.connect() as conn:
        stored = (await conn.execute(select(operator_sessions.c.id))).scalars().all()
    assert stored == [session_id(signed.token)] and signed.token not in stored  # only its hash is kept
    await service.sign_out(signed.token, Actor("ann@example.org", "192.0.2.1"))
    assert await service.session(signed.token) is None
    assert await audit_actions(publisher) == [
        ("cli:tester", Action.OPERATOR_ADD, "ann@example.org"),
        ("ann@example.org", Action.SIGN_IN_FAILED, "ann@example.org"),
        ("ann@example.org", Action.SIGN_IN, "ann@example.org"),
        ("ann@example.org", Action.SIGN_OUT, "ann@example.org"),
    ]


async def test_bad_accounts_are_refused_with_a_reason(publisher: Publisher) -> None:
    service = publisher.operators
    with pytest.raises(OperatorError, match="at least 12 characters"):
        await service.add("ann@example.org", Role.ADMIN, "short", CLI)
    with pytest.raises(OperatorError, match="not a valid email address"):
        await service.add("not-an-address", Role.ADMIN, PASSWORD, CLI)
    await service.add("ann@example.org", Role.ADMIN, PASSWORD, CLI)
    with pytest.raises(OperatorError, match="already an operator ann@example.org"):
        await service.add("ann@example.org", Role.VIEWER, PASSWORD, CLI)
    with pytest.raises(OperatorError, match="no operator bob@example.org"):
        await service.remove("bob@example.org", CLI)
    assert [a for _, a, _ in await audit_actions(publisher)] == [Action.OPERATOR_ADD]  # refusals change nothing


async def test_the_last_admin_can_be_neither_removed_nor_demoted(publisher: Publisher) -> None:
    service = publisher.operators
    await service.add("ann@example.org", Role.ADMIN, PASSWORD, CLI)
    with pytest.raises(OperatorError, match="last admin"):
        await service.remove("ann@example.org", CLI)
    with pytest.raises(OperatorError, match="last admin"):
        await service.set_role("ann@example.org", Role.VIEWER, CLI)
    await service.add("bob@example.org", Role.ADMIN, PASSWORD, CLI)
    await service.set_role("ann@example.org", Role.VIEWER, CLI)
    await service.remove("ann@example.org", CLI)
    assert [o.email for o in await service.every()] == ["bob@example.org"]
    async with publisher.engine.connect() as conn:
        detail = (await conn.execute(select(audit_log.c.detail).where(audit_log.c.action == Action.OPERATOR_ROLE))).scalar_one()
    assert json.loads(detail) == {"role": "viewer", "was": "admin"}


async def test_failures_in_a_row_lock_the_account_for_a_while_whatever_the_password(
    publisher: Publisher, moment: list[datetime]
) -> None:
    service = publisher.operators
    await service.add("ann@example.org", Role.ADMIN, PASSWORD, CLI)
    for _ in range(5):
        assert await service.sign_in("ann@example.org", "wrong password here", "192.0.2.1") is None
    assert await service.sign_in("ann@example.org", PASSWORD, "192.0.2.1") is None  # locked: even the right one
    moment[0] += timedelta(minutes=14)
    assert await service.sign_in("ann@example.org", PASSWORD, "192.0.2.1") is None
    moment[0] += timedelta(minutes=2)
    assert await service.sign_in("ann@example.org", PASSWORD, "192.0.2.1") is not None
    actions = [a for _, a, _ in await audit_actions(publisher)]
    assert actions.count(Action.LOCKED) == 1 and actions[-1] == Action.SIGN_IN


async def test_a_session_ends_when_idle_too_long_and_at_its_absolute_end(
    publisher: Publisher, moment: list[datetime]
) -> None:
    service = publisher.operators
    await service.add("ann@example.org", Role.VIEWER, PASSWORD, CLI)
    idle = await service.sign_in("ann@example.org", PASSWORD, "")
    assert idle is not None
    moment[0] += timedelta(minutes=29)
    assert await service.session(idle.token) is not None  # and that use moved its idle end
    moment[0] += timedelta(minutes=29)
    assert await service.session(idle.token) is not None
    moment[0] += timedelta(minutes=30)
    assert await service.session(idle.token) is None

    busy = await service.sign_in("ann@example.org", PASSWORD, "")
    assert busy is not None
    for _ in range(12 * 3 - 1):  # in use every 20 minutes, for just under 12 hours
        moment[0] += timedelta(minutes=20)
        assert await service.session(busy.token) is not None
    moment[0] += timedelta(minutes=20)
    assert await service.session(busy.token) is None


async def test_the_second_factor_is_asked_checked_and_never_taken_twice(
    publisher: Publisher, moment: list[datetime]
) -> None:
    service = publisher.operators
    await service.add("ann@example.org", Role.ADMIN, PASSWORD, CLI)
    secret = await service.enable_totp("ann@example.org", CLI)
    pending = await service.sign_in("ann@example.org", PASSWORD, "")
    assert pending is not None and pending.needs_code
    assert await service.session(pending.token) is None  # the password alone opens nothing
    code = totp.code_at(secret, totp.step_at(moment[0]))
    assert await service.second_factor(pending.token, "000000" if code != "000000" else "111111", "") is None
    full = await service.second_factor(pending.token, code, "")
    assert full is not None and full != pending.token
    assert await service.session(full) is not None
    assert await service.session(pending.token, pending=True) is None  # the pending session is gone

    again = await service.sign_in("ann@example.org", PASSWORD, "")
    assert again is not None
    assert await service.second_factor(again.token, code, "") is None  # the same code, still in its window
    moment[0] += timedelta(seconds=30)
    assert await service.second_factor(again.token, totp.code_at(secret, totp.step_at(moment[0])), "") is not None


async def test_changing_the_password_ends_the_operators_sessions(publisher: Publisher) -> None:
    service = publisher.operators
    await service.add("ann@example.org", Role.ADMIN, PASSWORD, CLI)
    signed = await service.sign_in("ann@example.org", PASSWORD, "")
    assert signed is not None
    await service.set_password("ann@example.org", "another long password", CLI)
    assert await service.session(signed.token) is None
    assert await service.sign_in("ann@example.org", PASSWORD, "") is None
    assert await service.sign_in("ann@example.org", "another long password", "") is not None


async def test_the_audit_log_pages_newest_first_and_keeps_a_removed_operators_email(publisher: Publisher) -> None:
    service = publisher.operators
    await service.add("ann@example.org", Role.ADMIN, PASSWORD, CLI)
    await service.add("bob@example.org", Role.EDITOR, PASSWORD, Actor("ann@example.org", "192.0.2.7"))
    await service.set_role("bob@example.org", Role.ADMIN, Actor("ann@example.org", "192.0.2.7"))
    await service.remove("ann@example.org", CLI)
    first = await service.audit_page(limit=2)
    assert [(e.operator, e.action) for e in first] == [("cli:tester", Action.OPERATOR_REMOVE), ("ann@example.org", Action.OPERATOR_ROLE)]
    rest = await service.audit_page(limit=2, before=first[-1].id)
    assert [(e.operator, e.action, e.remote) for e in rest] == [
        ("ann@example.org", Action.OPERATOR_ADD, "192.0.2.7"), ("cli:tester", Action.OPERATOR_ADD, ""),
    ]
    async with publisher.engine.connect() as conn:
        assert (await conn.execute(select(operators.c.email))).scalars().all() == ["bob@example.org"]


async def test_a_sign_in_deletes_the_sessions_that_ended_meanwhile(publisher: Publisher, moment: list[datetime]) -> None:
    service = publisher.operators
    await service.add("ann@example.org", Role.VIEWER, PASSWORD, CLI)
    assert await service.sign_in("ann@example.org", PASSWORD, "") is not None  # its browser closed, never seen again
    moment[0] += timedelta(minutes=31)
    assert await service.sign_in("ann@example.org", PASSWORD, "") is not None
    async with publisher.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(operator_sessions))).scalar_one() == 1


async def test_a_code_is_refused_once_the_second_factor_was_turned_off_meanwhile(publisher: Publisher, moment: list[datetime]) -> None:
    service = publisher.operators
    await service.add("ann@example.org", Role.ADMIN, PASSWORD, CLI)
    secret = await service.enable_totp("ann@example.org", CLI)
    pending = await service.sign_in("ann@example.org", PASSWORD, "")
    assert pending is not None and pending.needs_code
    await service.disable_totp("ann@example.org", CLI)
    assert await service.second_factor(pending.token, totp.code_at(secret, totp.step_at(moment[0])), "") is None
    again = await service.sign_in("ann@example.org", PASSWORD, "")
    assert again is not None and not again.needs_code


async def test_a_hash_made_with_weaker_parameters_is_remade_at_the_next_sign_in(publisher: Publisher) -> None:
    from argon2 import PasswordHasher

    from publisher.admin import passwords
    from publisher.admin import store as operator_store

    service = publisher.operators
    ann = await service.add("ann@example.org", Role.ADMIN, PASSWORD, CLI)
    await service.enable_totp("ann@example.org", CLI)  # remade at the password step, before the code
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    async with publisher.engine.begin() as conn:
        await operator_store.change(conn, ann.id, password_hash=weak)
    assert await service.sign_in("ann@example.org", PASSWORD, "") is not None
    remade = await service.get(ann.id)
    assert remade is not None and remade.password_hash != weak and not passwords.needs_rehash(remade.password_hash)
    assert passwords.verify(remade.password_hash, PASSWORD)
