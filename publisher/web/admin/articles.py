"""The articles pages: the published, scheduled and draft articles; one article's record
and previews; its resend and unpublishing (editors and admins, each confirmed first).

Every read is a service call of :class:`publisher.sources.intake.Intake` (a page of a
state by keyset, one article, one draft) or of the delivery service (the email as an
instant digest would mail it, the audience of a resend), and every change is the one
``publisher resend`` or ``publisher articles remove`` makes, in a transaction that
writes its audit row (:meth:`publisher.admin.service.OperatorService.audited`).

A resend and an unpublishing are asked twice: the first POST shows what it will do
(how many subscribers a resend mails, counted then: a count of subscribers, so only
on this deliberate step, never on a page a visit opens), and only the second, with
its box ticked, does it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from publisher import urls
from publisher.admin.model import Action, Role, Session
from publisher.content.model import Article
from publisher.store.article_state import ArticleState
from publisher.web import forms
from publisher.web.admin import frames, gate
from publisher.web.keys import PUBLISHER

PAGE = 50  # articles a page of the list
LISTED = (ArticleState.PUBLISHED, ArticleState.SCHEDULED, ArticleState.DRAFT)
MAX_CURSOR = 4000
DONE = {"resent": "The article is being sent again.", "unpublished": "The article was unpublished."}


@dataclass(frozen=True)
class Record:
    """One article as the dashboard shows it, whatever its state."""

    article: Article
    state: ArticleState
    first_seen_at: datetime | None = None  # a draft was never stored
    digests: tuple[str, ...] = ()
    path: str = ""  # a draft's file


def encode_cursor(*parts: str) -> str:
    """The ``after`` of the next page: where this one ended, opaque to the reader."""
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> tuple[str, str] | None:
    """An ``after`` made by :func:`encode_cursor` (None when absent); 400 for anything else."""
    if not raw:
        return None
    parts = None
    if len(raw) <= MAX_CURSOR:
        try:
            parts = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
    if not (isinstance(parts, list) and len(parts) == 2 and all(isinstance(part, str) for part in parts)):
        raise web.HTTPBadRequest(reason="after must be the link of a next page")
    return parts[0], parts[1]


def _moment(value: str) -> datetime:
    """The date of a cursor, as :func:`encode_cursor` wrote it (with its offset); 400 otherwise."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise web.HTTPBadRequest(reason="after must be the link of a next page")
    return moment


@gate.guarded(Role.VIEWER)
async def articles_page(request: web.Request, session: Session) -> web.StreamResponse:
    """One state's articles, a page at a time: published newest first, scheduled soonest
    first, drafts by file; each page one indexed LIMIT query."""
    raw_state = request.query.get("state", ArticleState.PUBLISHED)
    if raw_state not in LISTED:
        raise web.HTTPBadRequest(reason="state must be published, scheduled or draft")
    state = ArticleState(raw_state)
    after = decode_cursor(request.query.get("after", ""))
    intake = request.app[PUBLISHER].intake
    following = ""
    if state is ArticleState.DRAFT:
        drafts = await intake.drafts(after, PAGE + 1)
        rows = [Record(draft.article, state, path=draft.path) for draft in drafts[:PAGE]]
        if len(drafts) > PAGE:
            following = encode_cursor(drafts[PAGE - 1].source, drafts[PAGE - 1].path)
    else:
        if state is ArticleState.PUBLISHED:
            if after is not None and not after[1].isdigit():
                raise web.HTTPBadRequest(reason="after must be the link of a next page")
            newest = None if after is None else (_moment(after[0]), int(after[1]))
            stored = await intake.published_before(newest, PAGE + 1)
        else:
            stored = await intake.scheduled_after(None if after is None else (_moment(after[0]), after[1]), PAGE + 1)
        rows = [Record(found.article, found.state, found.first_seen_at) for found in stored[:PAGE]]
        if len(stored) > PAGE:
            last = stored[PAGE - 1]
            following = encode_cursor(last.article.published.isoformat(),
                                      str(last.seq) if state is ArticleState.PUBLISHED else last.article.id)
    context = {"page_title": "Articles", "state": state, "states": LISTED, "rows": rows, "following": following,
               "paged": after is not None, "done": DONE.get(request.query.get("done", ""), "")}
    return gate.page(request, "articles.html", context, session)


async def _record(request: web.Request) -> Record:
    """The article of the path, stored (any state) or a draft; 404 if none has the id."""
    article_id = request.match_info["article_id"]
    intake = request.app[PUBLISHER].intake
    found = await intake.find(article_id)
    if found is not None:
        return Record(found.article, found.state, found.first_seen_at, found.digests)
    draft = await intake.draft(article_id)
    if draft is None:
        raise web.HTTPNotFound(reason="No article has this id")
    return Record(draft.article, ArticleState.DRAFT, path=draft.path)


@gate.guarded(Role.VIEWER)
async def article_page(request: web.Request, session: Session) -> web.StreamResponse:
    """An article's record, its takeaways (suggested where it has none), and its previews."""
    from publisher.content.takeaways import suggest  # the HTML parser: only for a page that shows an article

    record = await _record(request)
    publisher = request.app[PUBLISHER]
    copy = publisher.delivery.article_copy(record.article)
    context = {
        "page_title": record.article.title or record.article.id, "record": record,
        "suggested": () if record.article.takeaways else suggest(record.article),
        "copy": copy, "widths": frames.WIDTHS, "done": DONE.get(request.query.get("done", ""), ""),
        "may_change": session.operator.role.allows(Role.EDITOR),
    }
    return frames.framing(gate.page(request, "article.html", context, session))


@gate.guarded(Role.VIEWER)
async def article_preview_page(request: web.Request, session: Session) -> web.StreamResponse:
    """The article's page as readers would see it (framed by :func:`article_page`)."""
    from publisher.web.public import article_page as public_page

    return frames.framed_page(public_page(request, (await _record(request)).article))


@gate.guarded(Role.VIEWER)
async def article_preview_email(request: web.Request, session: Session) -> web.StreamResponse:
    """The article's email HTML, as an instant digest of it would be mailed (framed)."""
    record = await _record(request)
    return frames.framed_email(request.app[PUBLISHER].delivery.article_copy(record.article).html)


def _confirmed(request: web.Request) -> bool:
    return forms.text(request[gate.FORM], "confirmed", 10) == "yes"


def _back(request: web.Request, record: Record, done: str) -> web.Response:
    return gate.redirect(urls.ADMIN_ARTICLE.under(gate.base(request), article_id=record.article.id) + f"?done={done}")


def _confirm(request: web.Request, session: Session, record: Record, **context: Any) -> web.Response:
    return gate.page(request, "confirm.html", {"record": record} | context, session)


@gate.guarded(Role.EDITOR)
async def resend(request: web.Request, session: Session) -> web.StreamResponse:
    """Send a published article again to every subscriber whose topics it matches
    (``publisher resend``), once confirmed; delivered in the background."""
    from publisher.digest.resend import UnknownArticle

    record = await _record(request)
    if record.state is not ArticleState.PUBLISHED:
        raise web.HTTPConflict(reason="Only a published article can be sent again")
    publisher = request.app[PUBLISHER]
    article_id = record.article.id
    try:
        if not _confirmed(request):
            _, audience = await publisher.delivery.resend_audience(article_id)
            return _confirm(request, session, record, page_title="Resend an article", action="resend",
                            audience=audience)
        detail: dict[str, object] = {}
        async with publisher.operators.audited(gate.actor(request, session), Action.ARTICLE_RESEND, article_id,
                                               detail) as conn:
            planned = await publisher.delivery.resend_on(conn, article_id)
            detail |= {"digest": planned.id, "recipients": planned.recipients}
    except UnknownArticle:
        raise web.HTTPConflict(reason="Only a published article can be sent again") from None
    publisher.tasks.later("resend", publisher.delivery.deliver)
    return _back(request, record, "resent")


@gate.guarded(Role.EDITOR)
async def unpublish(request: web.Request, session: Session) -> web.StreamResponse:
    """Take a published or scheduled article down (``publisher articles remove``), once confirmed."""
    record = await _record(request)
    if record.state not in (ArticleState.PUBLISHED, ArticleState.SCHEDULED):
        raise web.HTTPConflict(reason="Only a published or scheduled article can be unpublished")
    if not _confirmed(request):
        return _confirm(request, session, record, page_title="Unpublish an article", action="unpublish")
    publisher = request.app[PUBLISHER]
    actor, article_id = gate.actor(request, session), record.article.id
    await publisher.intake.unpublish(
        article_id, within=lambda: publisher.operators.audited(actor, Action.ARTICLE_UNPUBLISH, article_id)
    )
    if record.state is ArticleState.SCHEDULED:  # taken off the schedule: no record is left to show
        return gate.redirect(urls.ADMIN_ARTICLES.under(gate.base(request)) + "?state=scheduled&done=unpublished")
    return _back(request, record, "unpublished")


def add_article_routes(app: web.Application) -> None:
    app.router.add_get(urls.ADMIN_ARTICLES.path, articles_page)
    # The longer paths first: an id never holds a "/" (it travels as %2F), so each is one segment.
    app.router.add_get(urls.ADMIN_ARTICLE_PAGE.path, article_preview_page)
    app.router.add_get(urls.ADMIN_ARTICLE_EMAIL.path, article_preview_email)
    app.router.add_post(urls.ADMIN_ARTICLE_RESEND.path, resend)
    app.router.add_post(urls.ADMIN_ARTICLE_UNPUBLISH.path, unpublish)
    app.router.add_get(urls.ADMIN_ARTICLE.path, article_page)
