"""``publisher report [DIGEST]``: what became of a digest's messages, in all and per mailbox provider."""

from __future__ import annotations

import csv
import json
import sys
from typing import TYPE_CHECKING

import click

from publisher.cli.context import with_publisher
from publisher.cli.output import out, when

if TYPE_CHECKING:
    from publisher.delivery.report import DigestReport

RECENT = 10  # digests listed by `publisher report` without a DIGEST
# The columns of the text table, and the counts they show (publisher.delivery.report.STATES).
COLUMNS = (
    ("planned", "planned"), ("to send", "pending"), ("sending", "sending"), ("sent", "sent"),
    ("deferred", "deferred"), ("failed", "failed"), ("cancelled", "cancelled"), ("hard bounce", "bounced_hard"),
    ("soft bounce", "bounced_soft"), ("complaints", "complained"), ("unsubscribed", "unsubscribed"),
)


@click.command("report")
@click.argument("digest_id", required=False)
@click.option("--format", "form", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True,
              help="A table for people, one JSON object, or CSV rows (one per provider) with a header.")
@click.pass_context
def report(ctx: click.Context, digest_id: str | None, form: str) -> None:
    """What became of DIGEST_ID's messages, in all and per mailbox provider (Google, Microsoft,
    Yahoo, ...: README, "Mailbox providers"): planned, sent, deferred, failed, bounced (hard and
    soft), complaints and unsubscribes since it was planned, and the commonest replies.

    Without DIGEST_ID: the newest digests' ids.
    """
    if digest_id is None:
        recent = with_publisher(ctx, lambda publisher: publisher.delivery.states(limit=RECENT))
        if not recent:
            out.print("no digests yet", highlight=False)
            return
        out.print("the newest digests (publisher report DIGEST shows one; publisher digests list shows more):",
                  highlight=False, markup=False)
        for digest in recent:
            out.print(f"  {digest.id}  {digest.cadence}, {digest.status}, created {when(digest.created_at)}",
                      highlight=False, markup=False)
        return
    found = with_publisher(ctx, lambda publisher: publisher.digest_report(digest_id))
    if found is None:
        raise click.ClickException(f"there is no digest {digest_id!r} (`publisher report` lists the newest ids)")
    if form == "json":
        out.print(json.dumps(found.as_json(), indent=2), highlight=False, markup=False)
    elif form == "csv":
        write_csv(found)
    else:
        for line in text_lines(found):
            out.print(line, highlight=False, markup=False, soft_wrap=True)


def write_csv(found: DigestReport) -> None:
    """One row per provider, ``all`` first, under a header of the counts' names."""
    from publisher.delivery.report import STATES

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["provider", *STATES])
    for name, counts in (("all", found.states), *found.providers.items()):
        writer.writerow([name, *(counts[state] for state in STATES)])


def text_lines(found: DigestReport) -> list[str]:
    """The report for a person: the digest, its counts in words, a table per provider, the replies."""
    s = found.states
    finished = f", finished {when(found.finished_at)}" if found.finished_at else ""
    paused = f" ({found.pause_reason})" if found.pause_reason else ""
    lines = [
        f"digest {found.id}: {found.cadence}, {found.status}{paused}",
        f"created {when(found.created_at)}{finished}",
        "",
        f"{s['planned']} message(s) planned: {s['sent']} sent, {s['pending'] + s['sending']} still to send, "
        f"{s['deferred']} deferred (to be tried again), {s['failed']} failed, {s['cancelled']} cancelled",
        f"since it was planned: {s['bounced_hard']} hard bounce(s) (address suppressed), "
        f"{s['bounced_soft']} soft bounce(s), {s['complained']} complaint(s), {s['unsubscribed']} unsubscribed",
        "",
        "by mailbox provider:",
    ]
    width = max(len("provider"), *(len(name) for name in found.providers))
    header = f"  {'provider':<{width}}" + "".join(f"  {title:>{max(len(title), 5)}}" for title, _ in COLUMNS)
    lines.append(header)
    for name, counts in found.providers.items():
        lines.append(f"  {name:<{width}}" + "".join(
            f"  {counts[state]:>{max(len(title), 5)}}" for title, state in COLUMNS
        ))
    if found.replies:
        lines += ["", "commonest replies of failed and deferred messages:"]
        lines += [f"  {count:>6} × {reply}" for reply, count in found.replies]
    if found.clicks:
        lines += ["", "clicks per link (counted in all, never per reader):"]
        lines += [f"  {clicks:>6} × {url}" for url, clicks in found.clicks]
    return lines
