"""The dashboard's digests over HTTP (real app, real store): the list and the detail for every
role, an operator's pause that stops every delivery run taking the digest's messages and a
resume that lets them go, a cancel only once confirmed, a refused action that changes
nothing, the progress JSON from the kept counts, and each change's audit row."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import lxml.html
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from publisher import clock
from publisher.admin.model import Role
from publisher.app import Publisher
from publisher.delivery import ledger
from publisher.delivery.model import DeliveryState, DigestState
from publisher.digest.plan import PlanOptions, plan
from publisher.store.schema import audit_log
from publisher.web.security import PAGE_CSP, SCRIPT_PAGE_CSP
from subscribers.model import Cadence
from tests.support.admin import AdminVisitor, add_operator
from tests.support.outbox import outbox_messages
from tests.support.people import add_subscriber
from tests.support.web_client import web_client

READERS = 6
PROVIDERS = "Outcomes by mailbox provider (messages still to send are in the table above)"


@pytest.fixture
async def client(publisher: Publisher) -> AsyncIterator[TestClient]:
    async with web_client(publisher) as client:
        yield client


async def visitors(publisher: Publisher, client: TestClient) -> dict[Role, AdminVisitor]:
    """One signed-in visitor per role."""
    found = {}
    for role in Role:
        await add_operator(publisher, f"{role}@example.org", role)
        found[role] = AdminVisitor(client)
        assert (await found[role].sign_in(f"{role}@example.org")).status == 303
    return found


async def planned(publisher: Publisher, readers: int = READERS) -> str:
    """A digest being sent to ``readers`` readers, nothing sent yet: its id."""
    for n in range(readers):
        await add_subscriber(publisher.engine, f"r{n}@example.org")
    await publisher.intake.scan()
    [digest] = await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=5))
    return digest.id


async def audit_rows(publisher: Publisher) -> list[tuple[str, str, str]]:
    async with publisher.engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(
            select(audit_log.c.operator, audit_log.c.action, audit_log.c.target)
            .where(audit_log.c.action.like("digest.%")).order_by(audit_log.c.id)
        )]


async def status(publisher: Publisher, digest_id: str) -> tuple[DigestState, dict[str, int]]:
    found = await publisher.delivery.digest_state(digest_id)
    assert found is not None
    return found.status, found.counts


def tables(body: str) -> dict[str, list[list[str]]]:
    page = lxml.html.fromstring(body)
    return {" ".join(table.findtext("caption").split()): [[" ".join(cell.text_content().split()) for cell in row]
                                                           for row in table.iter("tr")] for table in page.iter("table")}


async def test_every_role_reads_the_list_and_the_detail_and_only_an_admin_is_offered_the_actions(
    publisher: Publisher, client: TestClient,
) -> None:
    digest_id = await planned(publisher)
    for role, visitor in (await visitors(publisher, client)).items():
        listed = await visitor.get("/admin/digests")
        assert listed.status == 200
        body = await listed.text()
        assert f'href="/admin/digests/{digest_id}"' in body
        assert [digest_id, "instant"] == tables(body)["Digests"][1][:2]
        assert listed.headers["Content-Security-Policy"] == SCRIPT_PAGE_CSP  # a digest being sent: live progress
        assert '<a href="/admin/digests" aria-current="page">Digests</a>' in body  # the menu's entry
        detail = await visitor.get(f"/admin/digests/{digest_id}")
        assert detail.status == 200
        body = await detail.text()
        page = tables(body)
        assert ["pending", str(READERS)] in page["Messages by state"]
        assert page[PROVIDERS][1:] == [["No message sent, deferred, failed or cancelled yet."]]
        assert f'href="/digests/{digest_id}"' in body  # the view-in-browser copy
        assert f'<progress max="{READERS}" value="0"' in body and 'aria-live="polite"' in body
        assert '<script src="/admin/static/progress.js" defer></script>' in body
        assert detail.headers["Content-Security-Policy"] == SCRIPT_PAGE_CSP
        assert ('id="pause"' in body) is (role is Role.ADMIN)
        assert ("/cancel" in body) is (role is Role.ADMIN)
        overview = await visitor.get("/admin/")  # the queue's digest being sent: its live progress too
        assert f'data-progress-url="/admin/digests/{digest_id}/progress"' in await overview.text()
        assert overview.headers["Content-Security-Policy"] == SCRIPT_PAGE_CSP
        script = await visitor.get("/admin/static/progress.js")
        assert script.status == 200 and script.content_type == "text/javascript"
        assert "visibilitychange" in await script.text()


async def test_a_viewer_and_an_editor_change_nothing(publisher: Publisher, client: TestClient) -> None:
    digest_id = await planned(publisher)
    by_role = await visitors(publisher, client)
    for role in (Role.VIEWER, Role.EDITOR):
        visitor = by_role[role]
        await visitor.get(f"/admin/digests/{digest_id}")
        for action in ("pause", "resume", "cancel"):
            response = await visitor.post(f"/admin/digests/{digest_id}/{action}", {"confirm": "yes"})
            assert response.status == 403, (role, action)
        assert (await visitor.get(f"/admin/digests/{digest_id}/cancel")).status == 403
    assert await status(publisher, digest_id) == (DigestState.SENDING, {"pending": READERS})
    assert await audit_rows(publisher) == []


async def test_a_pause_stops_a_running_delivery_on_its_next_batch_and_a_resume_sends_the_rest(
    publisher: Publisher, client: TestClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Paused between two of a run's batches (as from another node's dashboard), the run takes
    no more of its messages; resumed, the next run sends them."""
    digest_id = await planned(publisher)
    publisher.settings.delivery.batch_size = 2
    admin = (await visitors(publisher, client))[Role.ADMIN]
    await admin.get(f"/admin/digests/{digest_id}")
    real_claim = ledger.claim
    claims = 0

    async def claim_then_pause(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        batch = await real_claim(*args, **kwargs)
        if claims == 1:  # the first batch is claimed: the operator pauses
            response = await admin.post(f"/admin/digests/{digest_id}/pause", {})
            assert response.status == 303
            assert response.headers["Location"] == f"/admin/digests/{digest_id}?done=paused"
        return batch

    monkeypatch.setattr(ledger, "claim", claim_then_pause)
    await publisher.delivery.deliver()
    monkeypatch.setattr(ledger, "claim", real_claim)
    # At most the batch claimed before the pause went (what was queued but not handed over is
    # released); no further batch was claimed.
    sent = len(outbox_messages(publisher.settings))
    assert claims == 2 and sent <= 2
    state, counts = await status(publisher, digest_id)
    assert state == DigestState.PAUSED
    assert counts == {state: n for state, n in (("sent", sent), ("pending", READERS - sent)) if n}
    found = await publisher.delivery.digest_state(digest_id)
    assert found is not None and found.pause_reason == "paused by admin@example.org from the dashboard"
    paused = await admin.get(f"/admin/digests/{digest_id}?done=paused")
    page = await paused.text()
    assert "The digest is paused" in page and 'id="resume"' in page and 'id="pause"' not in page
    assert paused.headers["Content-Security-Policy"] == PAGE_CSP and "progress.js" not in page  # nothing to follow

    await publisher.delivery.deliver()  # a paused digest's messages are not sent
    assert len(outbox_messages(publisher.settings)) == sent

    response = await admin.post(f"/admin/digests/{digest_id}/resume", {})
    assert response.status == 303 and response.headers["Location"] == f"/admin/digests/{digest_id}?done=resumed"
    assert (await status(publisher, digest_id))[0] == DigestState.SENDING
    await publisher.delivery.deliver()  # the nodes' delivery job
    assert len(outbox_messages(publisher.settings)) == READERS
    assert await status(publisher, digest_id) == (DigestState.FINISHED, {"sent": READERS})
    assert await audit_rows(publisher) == [("admin@example.org", "digest.pause", digest_id),
                                          ("admin@example.org", "digest.resume", digest_id)]


async def test_a_refused_action_shows_the_page_with_the_reason_and_changes_nothing(
    publisher: Publisher, client: TestClient,
) -> None:
    digest_id = await planned(publisher)
    admin = (await visitors(publisher, client))[Role.ADMIN]
    await admin.get(f"/admin/digests/{digest_id}")
    response = await admin.post(f"/admin/digests/{digest_id}/resume", {})  # sending, not paused
    assert response.status == 409
    assert "only a paused digest can be resumed" in await response.text()
    await publisher.delivery.deliver()
    before = await status(publisher, digest_id)
    assert before == (DigestState.FINISHED, {"sent": READERS})
    for action, words in (("pause", "only a digest being sent can be paused"),
                          ("resume", "only a paused digest can be resumed"),
                          ("cancel", "only a digest being sent or paused can be cancelled")):
        response = await admin.post(f"/admin/digests/{digest_id}/{action}", {"confirm": "yes"})
        assert response.status == 409, action
        assert words in await response.text()
        assert response.headers["Content-Security-Policy"] == PAGE_CSP  # finished: no live progress
    assert await status(publisher, digest_id) == before
    assert await audit_rows(publisher) == []


async def test_a_cancel_asks_for_confirmation_first(publisher: Publisher, client: TestClient) -> None:
    digest_id = await planned(publisher)
    admin = (await visitors(publisher, client))[Role.ADMIN]
    confirm = await admin.get(f"/admin/digests/{digest_id}/cancel")
    assert confirm.status == 200
    body = await confirm.text()
    assert 'type="checkbox" id="confirm" name="confirm" value="yes" required' in body
    unconfirmed = await admin.post(f"/admin/digests/{digest_id}/cancel", {})
    assert unconfirmed.status == 422 and "Tick the box to confirm" in await unconfirmed.text()
    assert await status(publisher, digest_id) == (DigestState.SENDING, {"pending": READERS})
    assert await audit_rows(publisher) == []

    confirmed = await admin.post(f"/admin/digests/{digest_id}/cancel", {"confirm": "yes"})
    assert confirmed.status == 303
    assert confirmed.headers["Location"] == f"/admin/digests/{digest_id}?done=cancelled"
    assert await status(publisher, digest_id) == (DigestState.FINISHED, {"cancelled": READERS})
    await publisher.delivery.deliver()
    assert outbox_messages(publisher.settings) == []
    assert await audit_rows(publisher) == [("admin@example.org", "digest.cancel", digest_id)]
    async with publisher.engine.connect() as conn:
        detail = await conn.scalar(select(audit_log.c.detail).where(audit_log.c.action == "digest.cancel"))
    assert '"cancelled": 6' in detail and '"sent": 0' in detail


async def test_the_progress_json_follows_the_kept_counts(publisher: Publisher, client: TestClient) -> None:
    digest_id = await planned(publisher)
    viewer = (await visitors(publisher, client))[Role.VIEWER]
    response = await viewer.get(f"/admin/digests/{digest_id}/progress")
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    assert await response.json() == {"id": digest_id, "status": "sending", "pause_reason": None, "sent": 0,
                                     "total": READERS, "counts": {"pending": READERS}, "finished": False}
    await publisher.delivery.deliver()
    done = await (await viewer.get(f"/admin/digests/{digest_id}/progress")).json()
    assert (done["sent"], done["total"], done["status"], done["finished"]) == (READERS, READERS, "finished", True)
    anonymous = AdminVisitor(client)
    assert (await anonymous.get(f"/admin/digests/{digest_id}/progress")).status == 401  # its script stops


async def test_the_list_filters_by_status_and_pages_by_key(publisher: Publisher, client: TestClient) -> None:
    first = await planned(publisher, 2)
    await publisher.delivery.deliver()
    from publisher.store.ingest import ingest
    from tests.support.articles import seed_like

    later = []
    for n in range(3):
        await ingest(publisher.engine, [seed_like(id=f"new-{n}", slug=f"new-{n}", title=f"New {n}")], clock.now())
        [digest] = await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=5))
        later.append(digest.id)
    viewer = (await visitors(publisher, client))[Role.VIEWER]

    def ids(body: str) -> list[str]:
        """The digests listed (none: no table)."""
        return [row[0] for table in tables(body).values() for row in table[1:]]

    finished = await (await viewer.get("/admin/digests?status=finished")).text()
    assert ids(finished) == [first]
    sending = await (await viewer.get("/admin/digests?status=sending")).text()
    assert ids(sending) == list(reversed(later))
    import publisher.web.admin.digests as pages

    original, pages.LIST_PAGE = pages.LIST_PAGE, 2
    try:
        top = await (await viewer.get("/admin/digests")).text()
        assert ids(top) == [later[2], later[1]]
        assert f'before={later[1]}' in top
        rest = await (await viewer.get(f"/admin/digests?before={later[1]}")).text()
        assert ids(rest) == [later[0], first]
    finally:
        pages.LIST_PAGE = original


async def test_bad_ids_and_parameters_answer_404_and_400(publisher: Publisher, client: TestClient) -> None:
    await planned(publisher, 1)
    admin = (await visitors(publisher, client))[Role.ADMIN]
    assert (await admin.get("/admin/digests/instant-20000101T000000-000000")).status == 404
    assert (await admin.get("/admin/digests/instant-20000101T000000-000000/progress")).status == 404
    assert (await admin.get("/admin/digests/no%20such")).status == 404
    await admin.get("/admin/digests")
    assert (await admin.post("/admin/digests/instant-20000101T000000-000000/pause", {})).status == 404
    assert (await admin.get("/admin/digests?status=lost")).status == 400
    assert (await admin.get("/admin/digests?before=a%20b")).status == 400
    [digest] = await publisher.delivery.states(limit=1)
    assert (await admin.get(f"/admin/digests/{digest.id}?after=x")).status == 400
    async with publisher.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(audit_log).where(
            audit_log.c.action.like("digest.%"))) == 0


async def test_the_failures_are_listed_with_their_replies_a_page_at_a_time(
    publisher: Publisher, client: TestClient,
) -> None:
    digest_id = await planned(publisher)
    claimant = publisher.delivery.claimant
    rows = await ledger.claim(publisher.engine, digest_id, 0, READERS, clock.now(), claimant)
    await ledger.record(publisher.engine, [
        {"digest": digest_id, "sid": row.subscriber_id, "state": DeliveryState.FAILED, "attempts": 1,
         "retry_at": None, "last_reply": f"550 5.1.1 <{row.email}>: no such user"} for row in rows
    ], clock.now())
    viewer = (await visitors(publisher, client))[Role.VIEWER]
    import publisher.web.admin.digests as pages

    original, pages.FAILURES_PAGE = pages.FAILURES_PAGE, 4
    try:
        first = tables(await (await viewer.get(f"/admin/digests/{digest_id}")).text())
        failed = first["Messages that failed, with the last reply"]
        assert [row[0] for row in failed[1:]] == [f"r{n}@example.org" for n in range(4)]
        assert failed[1][2] == "550 5.1.1 <address>: no such user"
        assert first[PROVIDERS] == [["Provider", "sent", "deferred", "failed", "cancelled"],
                                    ["other", "0", "0", str(READERS), "0"]]
        replies = first["The relay's commonest replies to failed and deferred messages (addresses left out; "
                        "over 5,000 of them at most)"]
        assert replies[1] == ["550 5.1.1 <address>: no such user", str(READERS)]
        more = tables(await (await viewer.get(f"/admin/digests/{digest_id}?after={rows[3].subscriber_id}")).text())
        assert [row[0] for row in more["Messages that failed, with the last reply (more)"][1:]] == [
            "r4@example.org", "r5@example.org"]
    finally:
        pages.FAILURES_PAGE = original
