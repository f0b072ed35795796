"""``publisher digests``: list the digests, cancel one, or take an article out of one not yet sent."""

from __future__ import annotations

import click

from publisher.cli.context import with_publisher
from publisher.cli.output import out, when


@click.group("digests")
def group() -> None:
    """List the digests, cancel one, or take an article out of one not yet sent."""


@group.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many, newest first.")
@click.pass_context
def digests_list(ctx: click.Context, limit: int) -> None:
    """The newest digests: id, cadence, status, created, articles, and their messages by state."""
    found = with_publisher(ctx, lambda publisher: publisher.delivery.states(limit=limit))
    if not found:
        out.print("no digests yet", highlight=False)
        return
    # Plain padded lines, never wrapped: a table would squeeze the ids to fit 80 columns.
    width = max(len("digest"), *(len(d.id) for d in found))
    out.print(f"{'digest':<{width}}  cadence  status    {'created':<20}  articles  messages",
              highlight=False, markup=False, soft_wrap=True)
    for d in found:
        messages = ", ".join(f"{count} {row_state}" for row_state, count in sorted(d.counts.items())) or "none"
        out.print(f"{d.id:<{width}}  {d.cadence:<7}  {d.status:<8}  {when(d.created_at):<20}  {d.articles:>8}  "
                  f"{messages}", highlight=False, markup=False, soft_wrap=True)


@group.command("cancel")
@click.argument("digest_id")
@click.pass_context
def digests_cancel(ctx: click.Context, digest_id: str) -> None:
    """Finish DIGEST_ID now: its messages not yet sent are cancelled (those sent stay sent)."""
    from publisher.delivery.service import DigestNotOpen

    try:
        cancelled, sent = with_publisher(ctx, lambda publisher: publisher.delivery.cancel_digest(digest_id))
    except DigestNotOpen as exc:
        raise click.ClickException(str(exc)) from None
    out.print(f"cancelled {digest_id}: {cancelled} message(s) will not be sent, {sent} already sent",
              highlight=False, markup=False)


@group.command("drop-article")
@click.argument("digest_id")
@click.argument("article")
@click.pass_context
def digests_drop_article(ctx: click.Context, digest_id: str, article: str) -> None:
    """Take ARTICLE (id, slug, URL or feed entry id) out of DIGEST_ID's messages still to send.

    For a digest paused because one article can't be rendered: drop it, then
    `publisher resume`.  A digest left without articles is cancelled.
    """
    from publisher.delivery.service import DigestNotOpen
    from publisher.digest.resend import UnknownArticle

    try:
        dropped = with_publisher(ctx, lambda publisher: publisher.delivery.drop_from_digest(digest_id, article))
    except (UnknownArticle, DigestNotOpen) as exc:
        raise click.ClickException(str(exc)) from None
    if dropped.cancelled is not None:
        out.print(f"dropped {dropped.article_id}: {digest_id} had no other article: cancelled, "
                  f"{dropped.cancelled} message(s) will not be sent", highlight=False, markup=False)
        return
    out.print(f"dropped {dropped.article_id} from {digest_id}: {dropped.left} article(s) left, "
              f"{dropped.to_send} message(s) still to send go without it", highlight=False, markup=False)
