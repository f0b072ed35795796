"""``publisher articles``: list, inspect and unpublish the stored articles (drafts: read where they are)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from publisher.cli.context import settings_of, with_publisher
from publisher.cli.output import out, print_takeaways, when
from publisher.store.article_state import ArticleState

if TYPE_CHECKING:
    from publisher.app import Publisher


@click.group("articles")
def group() -> None:
    """List, inspect and unpublish articles."""


@group.command("list")
@click.option("--scheduled", "which", flag_value=ArticleState.SCHEDULED, help="The articles waiting for their date.")
@click.option("--drafts", "which", flag_value=ArticleState.DRAFT, help="The drafts in the content directories.")
@click.pass_context
def articles_list(ctx: click.Context, which: str | None) -> None:
    """A table of the published articles, newest first (or the scheduled ones, or the drafts)."""
    from rich.table import Column, Table
    from rich.text import Text

    from publisher.sources.intake import check_content

    state = ArticleState(which or ArticleState.PUBLISHED)
    if state == ArticleState.DRAFT:  # never stored: read where they are
        found = [draft for scan in check_content(settings_of(ctx)) for draft in scan.drafts]
    else:
        found = with_publisher(
            ctx,
            lambda publisher: publisher.intake.scheduled() if state == ArticleState.SCHEDULED
            else publisher.intake.latest(),
        )
    # Ids and slugs are folded, never cut short: they are what the other commands take.
    table = Table(Column("id", overflow="fold"), Column("slug", overflow="fold"), "title",
                  Column("date", no_wrap=True), Column("state", no_wrap=True))
    for article in found:
        table.add_row(Text(article.id), Text(article.slug), Text(article.title), when(article.published), state)
    out.print(table)
    out.print(f"{len(found)} {state} article(s)", highlight=False)


@group.command("show")
@click.argument("article_id")
@click.pass_context
def articles_show(ctx: click.Context, article_id: str) -> None:
    """An article's fields, its state, when it was first seen and which digests carried it."""
    found = with_publisher(ctx, lambda publisher: publisher.intake.find(article_id))
    if found is None:
        raise click.ClickException(f"no article has the id {article_id!r}")
    article = found.article
    fields = [
        ("id", article.id), ("state", found.state), ("title", article.title), ("slug", article.slug),
        ("url", article.canonical_url), ("date", when(article.published)), ("updated", when(article.updated)),
        ("author", article.author), ("tags", ", ".join(article.tags)), ("source", article.source_path),
        ("first seen", when(found.first_seen_at)), ("digests", ", ".join(found.digests) or "none"),
    ]
    for name, value in fields:
        out.print(f"{name}: {value}", highlight=False, markup=False)
    print_takeaways(article, settings_of(ctx).content.takeaways)


@group.command("remove")
@click.argument("article_id")
@click.pass_context
def articles_remove(ctx: click.Context, article_id: str) -> None:
    """Unpublish ARTICLE_ID: gone from feeds and pages until its source offers an edit (digests sent stay sent)."""

    async def work(publisher: Publisher) -> bool:
        return await publisher.intake.unpublish(article_id)

    if not with_publisher(ctx, work):
        raise click.ClickException(f"no published or scheduled article has the id {article_id!r}")
    out.print(f"unpublished {article_id}", highlight=False, markup=False)
