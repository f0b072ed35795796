"""``POST /api/articles``: the ingest API, for a CMS webhook (the ``api`` source).

An article comes as Markdown with front matter (``Content-Type: text/markdown``), the
same format as the content directory, or as JSON: the front matter's fields as an
object, with the Markdown text under ``body``.  Both go through the Markdown
source's parser, so an article means the same thing whichever way it arrives.  Every
problem comes back at once as a 422.  An article is identified by its ``id`` (else
its canonical URL): posting it again is an edit, which updates the feeds and never
sends it twice.  A draft (``draft: true`` or ``status: draft``) is not published, and
posting an article the API published as a draft unpublishes it.  An id another source
publishes is refused (409).  One dated in the future is scheduled (202): published
when its time comes.
"""

from __future__ import annotations

import asyncio
import logging

import yaml
from aiohttp import web

from publisher import urls
from publisher.config import Settings
from publisher.content.clean import clean_text
from publisher.content.markdown import ParsedFile, read_article
from publisher.content.model import Problem
from publisher.store import articles as article_store
from publisher.web.api.http import (
    DEFAULT_LIMIT,
    ApiError,
    check_count,
    check_query,
    collect,
    invalid,
    json_object,
    parse_json,
    publisher_of,
    read_body,
)
from subscribers.validation import SubscriberError

log = logging.getLogger(__name__)

MAX_ARTICLE_BODY = 2 * 1024 * 1024
MARKDOWN_TYPES = frozenset({"text/markdown", "text/x-markdown", "text/plain"})
NAME = "api"  # how problems name the input
LIST_PARAMS = frozenset({"after", "limit"})


async def post_article(request: web.Request) -> web.Response:
    publisher = publisher_of(request)
    if not publisher.settings.api_source:
        raise ApiError(404, "articles are not taken here: add a [[sources]] entry with type = \"api\"")
    raw = await read_body(request, MAX_ARTICLE_BODY)
    with_lines = request.content_type in MARKDOWN_TYPES
    if not with_lines and request.content_type != "application/json":
        raise ApiError(415, "send Markdown with front matter (text/markdown) or JSON (application/json)")
    # In a thread: a body of megabytes takes seconds to parse, and on the event loop every
    # other request (pages, feeds, the API) would wait for it.
    parsed = await asyncio.to_thread(_parse, raw, with_lines, publisher.settings)
    article = parsed.article
    if article is None:
        problems = [_problem(p, with_lines) for p in parsed.errors]
        raise ApiError(422, f"{len(problems)} problem{'s' if len(problems) != 1 else ''} with the article",
                       problems)
    if parsed.draft:
        await publisher.intake.accept([], withdrawn=[article.id])
        state = "draft"
    else:
        result = await publisher.intake.accept([article])
        if result.skipped:
            raise ApiError(409, result.skipped[0].message)
        state = "new" if result.new else "updated" if result.updated else "scheduled" if result.scheduled else "unchanged"
    body = {"id": article.id, "slug": article.slug, "url": article.canonical_url, "status": state}
    return web.json_response(body, status={"new": 201, "scheduled": 202}.get(state, 200))


def _parse(raw: bytes, markdown: bool, settings: Settings) -> ParsedFile:
    """The article in a request's body; whatever in it makes a parser fail is the sender's
    problem (422), never a 500: a document nested too deep for the YAML writer, say."""
    try:
        document = raw if markdown else markdown_document(parse_json(raw))
        return read_article(document, NAME, settings.site.url, slug_from_title=True, limits=settings.content.limits)
    except ApiError:
        raise
    except RecursionError:
        problem = SubscriberError("the article is nested too deeply to read", "")
        raise ApiError(422, "1 problem with the article", [problem]) from None
    except Exception as exc:  # noqa: BLE001 (a parser's failure on this input, reported with its reason)
        log.warning("POST /api/articles: cannot read the article", exc_info=True)
        problem = SubscriberError(f"cannot read the article: {type(exc).__name__}: {exc}", "")
        raise ApiError(422, "1 problem with the article", [problem]) from None


def markdown_document(body: object) -> bytes:
    """The JSON shape as the Markdown document it stands for.

    JSON can escape a lone surrogate (``"\\ud800"``), which no UTF-8 document holds:
    the body is cleaned as the article's fields will be (the front matter's YAML
    escapes it, and the model cleans it there).
    """
    try:
        fields = json_object(body)
    except SubscriberError as exc:
        raise ApiError(422, str(exc), [exc]) from None
    text = fields.pop("body", "")
    if not isinstance(text, str):
        raise ApiError(422, "1 problem with the article", [SubscriberError("body must be Markdown text", "body")])
    front = yaml.safe_dump(fields, allow_unicode=True, sort_keys=False) if fields else ""
    return f"---\n{front}---\n{clean_text(text)}".encode()


def _problem(problem: Problem, with_lines: bool) -> SubscriberError:
    """One entry of the 422's ``problems``; a line number only means something in Markdown."""
    return SubscriberError(f"line {problem.line}: {problem.message}" if with_lines else problem.message, "")


async def list_articles(request: web.Request) -> web.Response:
    """One page of published articles by ``seq``: pass ``next_after`` back as ``after`` until it is null."""
    query = request.query
    problems = check_query(query, LIST_PARAMS)
    after = collect(problems, lambda: check_count(query.get("after", "0"), "after", 0, 2**63 - 1))
    limit = collect(
        problems, lambda: check_count(query.get("limit", str(DEFAULT_LIMIT)), "limit", 1, article_store.PAGE_LIMIT)
    )
    if problems or after is None or limit is None:
        raise invalid(problems)
    engine = publisher_of(request).engine
    # One row more than asked tells whether this is the last page (next_after null).
    page, total = await article_store.published_page(engine, after=after, limit=limit + 1)
    shown = page[:limit]
    return web.json_response({
        "articles": [stored.to_dict() for stored in shown],
        "next_after": shown[-1].seq if len(page) > limit else None,
        "total": total,
    })


async def delete_article(request: web.Request) -> web.Response:
    """Unpublish: gone from feeds and pages (a digest already sent stays sent)."""
    article_id = request.match_info["article_id"]
    if not await publisher_of(request).intake.unpublish(article_id):
        raise ApiError(404, f"no published or scheduled article has the id {article_id!r}")
    return web.Response(status=204)


def add_article_routes(api: web.Application) -> None:
    api.router.add_post(urls.API_ARTICLES.path, post_article)
    api.router.add_get(urls.API_ARTICLES.path, list_articles)
    api.router.add_delete(urls.API_ARTICLE.path, delete_article)
