"""The commands that mail digests: ``send``, ``preview``, ``resume`` and ``resend``.

Their exit status tells cron what is left (:class:`~publisher.cli.context.ExitCode`):
3 when the transport could not be reached, 4 when messages remain.  ``send`` scans
(the intake), then plans and delivers (the delivery service) and asks the ledger what
is left; this module parses the options, makes those calls and prints.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from typing import TYPE_CHECKING

import click

from publisher import clock
from publisher.cli.context import CADENCES, ExitCode, settings_of, with_publisher
from publisher.cli.output import ago, err, out, print_takeaways, progress_bar, when
from subscribers.model import Cadence

if TYPE_CHECKING:  # the services are imported when a command runs (publisher.cli.context)
    from publisher.app import Publisher
    from publisher.delivery.ledger import Holder, Remaining
    from publisher.delivery.model import DeliveryReport
    from publisher.delivery.service import DigestCopy, NothingToPreview, SendResult
    from publisher.digest.plan import PlannedDigest
    from publisher.digest.resend import UnknownArticle
    from subscribers.validation import SubscriberError


@click.command()
@click.option(
    "--cadence", type=CADENCES,
    help="Plan this cadence's digests due now (default: instant). Daily and weekly: the subscribers whose "
    "send time, in their timezone, has passed since their last digest.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be sent; change nothing.")
@click.option("--wait", is_flag=True, help="Also wait out deferred messages until every digest is finished or paused.")
@click.option("--test", "test_to", metavar="EMAIL",
              help="Send one copy of the next digest to EMAIL, marked as a test ([TEST] subject, "
              "X-Publisher-Test header); outside the ledger, no cursor moves.")
@click.option("--article", metavar="ARTICLE", help="With --test: a copy of this article (id, slug, URL or entry id).")
@click.pass_context
def send(
    ctx: click.Context, cadence: str | None, dry_run: bool, wait: bool, test_to: str | None, article: str | None
) -> None:
    """Scan, plan the digests due now and deliver everything pending (with a progress bar)."""
    if article is not None and test_to is None:
        raise click.UsageError("--article goes with --test EMAIL (to mail an article to everyone: publisher resend)")
    if test_to is not None and (dry_run or wait):
        raise click.UsageError("--test sends one copy at once: leave out --dry-run and --wait")

    async def work(publisher: Publisher) -> ExitCode:
        wanted = Cadence(cadence or Cadence.INSTANT)
        if test_to is not None:
            return await _send_test(publisher, test_to, Cadence(cadence) if cadence else None, article)
        if dry_run:  # scan and plan in a transaction rolled back: no article stored, no feed written
            async with publisher.delivery.rehearse(wanted) as rehearsal:
                _print_planned(rehearsal.planned, "would send", rehearsal.nothing_due)
            return ExitCode.OK
        await publisher.intake.scan()
        due = await publisher.delivery.due_count()  # rows left by earlier sends
        with progress_bar() as update:
            update(total=due or None)
            started = time.monotonic()

            def progress(report: DeliveryReport) -> None:
                rate = report.handled / max(time.monotonic() - started, 1e-6)
                update(completed=report.handled, rate=rate)

            def planned_now(planned: list[PlannedDigest]) -> None:  # delivery starts on the plan's first batch
                update(total=due + sum(digest.recipients for digest in planned) or None)

            result = await publisher.delivery.send([wanted], wait=wait, progress=progress, on_planned=planned_now)
        planned, report = result.planned, result.report
        _print_planned(planned, "planned", "" if planned else await publisher.delivery.why_nothing_due(wanted))
        assert report is not None  # not a dry run
        return _report_delivery(report, await publisher.delivery.remaining())

    ctx.exit(with_publisher(ctx, work))


async def _send_test(publisher: Publisher, to: str, cadence: Cadence | None, article: str | None) -> ExitCode:
    from publisher.delivery.service import NothingToPreview
    from publisher.digest.resend import UnknownArticle
    from publisher.mail.transport import DeliveryError
    from subscribers.validation import SubscriberError

    try:
        copy = await publisher.delivery.send_test(to, cadence=cadence, article=article)
    except (NothingToPreview, UnknownArticle, SubscriberError) as exc:
        raise click.ClickException(_nothing(exc)) from None
    except DeliveryError as exc:
        if exc.code is None:  # never connected: the same outcome as a send that can't reach it
            err.print(f"not sent: cannot reach the transport: {exc}", markup=False, highlight=False)
            return ExitCode.UNREACHABLE
        raise click.ClickException(f"the test copy to {to} was refused: {exc}") from None
    out.print(f"sent a test copy to {copy.recipient}: {copy.subject} ({copy.article_count} article(s))",
              markup=False, highlight=False)
    return ExitCode.OK


def _nothing(exc: NothingToPreview | UnknownArticle | SubscriberError) -> str:
    """The one-line reason a preview or test send has nothing to show."""
    from publisher.digest.resend import UnknownArticle

    if isinstance(exc, UnknownArticle):
        closest = "; ".join(f"{ident} ({title})" for ident, title in exc.closest)
        hint = f"; closest: {closest}" if closest else "; `publisher build` publishes the content first"
        return f"no published article has the id, slug, URL or feed entry id {exc.reference!r}{hint}"
    return str(exc)


@click.command()
@click.option("--cadence", type=CADENCES, help="The digest of this cadence (default: the subscriber's, else instant).")
@click.option("--subscriber", metavar="EMAIL", help="Their copy, with their links (default: a made-up reader).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the files here (default: a new folder under [storage] data_dir/previews).")
@click.pass_context
def preview(ctx: click.Context, cadence: str | None, subscriber: str | None, out_dir: Path | None) -> None:
    """Write the next digest's HTML, text and whole message, as `send` would mail it now; change nothing.

    Warns (on stderr, after the files) when the digest is too big for Gmail and shows its last
    articles as headlines, and about what the HTML uses that some of [email] clients lack
    (all of it, with the notes, in clients.txt).  Exits 1, saying why, when there is nothing to preview.
    """

    async def work(publisher: Publisher) -> tuple[DigestCopy, Path]:
        copy = await publisher.delivery.next_copy(Cadence(cadence) if cadence else None, subscriber=subscriber)
        previews = publisher.settings.storage.data_dir / "previews"
        previews.mkdir(parents=True, exist_ok=True)
        return copy, out_dir or Path(tempfile.mkdtemp(prefix=f"{clock.now():%Y%m%dT%H%M%S}-", dir=previews))

    from publisher.delivery.service import NothingToPreview
    from subscribers.validation import SubscriberError

    try:
        copy, target = with_publisher(ctx, work)
    except (NothingToPreview, SubscriberError) as exc:
        raise click.ClickException(_nothing(exc)) from None
    from publisher.mail.client_lint import details, lint, report
    from publisher.mail.render import HTML_TEMPLATE

    settings = settings_of(ctx)
    clients = settings.email.client_ids
    findings = lint([(HTML_TEMPLATE, copy.html)], clients)
    target.mkdir(parents=True, exist_ok=True)
    files = {"digest.html": copy.html.encode(), "digest.txt": copy.text.encode(), "digest.eml": copy.message,
             "clients.txt": details(findings, clients).encode()}
    out.print(f"subject: {copy.subject}", markup=False, highlight=False)
    out.print(f"to: {copy.recipient} ({copy.article_count} article(s))", markup=False, highlight=False)
    out.print(f"html: {copy.html_bytes:,} bytes as sent (limit {settings.digest.max_message_bytes:,}: "
              "[digest] max_message_bytes)", markup=False, highlight=False)
    for name, data in files.items():
        (target / name).write_bytes(data)
        out.print(str(target / name), markup=False, highlight=False)
    if copy.headlines:
        err.print(f"warning: the digest in full passes [digest] max_message_bytes (Gmail clips at about 102 KB): "
                  f"its last {copy.headlines} of {copy.article_count} article(s) are shown as headlines",
                  markup=False, highlight=False)
    warnings, note = report(findings)
    for line in warnings + ([note] if note else []):
        err.print(line, markup=False, highlight=False)
    for article in copy.articles:
        print_takeaways(article, settings.content.takeaways, f"{article.slug}: ")


def _print_planned(planned: list[PlannedDigest], verb: str, nothing_due: str) -> None:
    for digest in planned:
        out.print(f"{verb} {digest.id}: {len(digest.article_seqs)} article(s) to {digest.recipients} subscriber(s)",
                  highlight=False)
    if not planned:
        out.print(nothing_due, highlight=False, markup=False)


def _report_delivery(report: DeliveryReport, left: Remaining) -> ExitCode:
    """Print what a delivery run did and what it left; the exit code that tells cron which."""
    r = report
    out.print(f"sent {r.sent}, deferred {r.deferred}, failed {r.failed}, cancelled {r.cancelled}", highlight=False)
    for digest_id in r.paused:
        err.print(f"[red]paused[/red] {digest_id}: see `publisher status`; `publisher resume {digest_id}` "
                  "continues it", highlight=False)
    if r.unreachable:
        err.print(f"not sent: {r.unreachable}; {left.total} message(s) wait for it. Run `publisher send` again "
                  "once it answers, or `publisher send --wait` to keep trying", markup=False, highlight=False)
        return ExitCode.UNREACHABLE
    if left.total:
        parts = []
        if left.deferred:
            parts.append(f"{left.deferred} deferred, next try at {when(left.next_retry)}")
        parts.extend(_held(holder) for holder in left.holders)
        if left.pending:
            parts.append(f"{left.pending} not tried yet (another process is delivering, or the run was stopped)")
        err.print(f"{left.total} message(s) remain: {'; '.join(parts)}. `publisher send --wait` waits them out",
                  markup=False, highlight=False)
    return ExitCode.REMAINING if left.total or r.paused else ExitCode.OK


def _held(holder: Holder) -> str:
    """Who holds claimed rows, whether it runs, and when they free up if it died.

    A node that died on this machine is no longer listed: the run replayed its journal
    and took its rows back (:func:`publisher.delivery.outcomes.recover`).  One on
    another machine may be dead or alive; only its heartbeat (a daemon's) says it runs.
    """
    from publisher.runtime.nodes import STALE_AFTER

    now = clock.now()
    soon = f" (in {ago(now, holder.until)})" if holder.until is not None else ""
    free = f"taken over at {when(holder.until)}{soon} if it died"
    if holder.seen_at is not None and now - holder.seen_at <= STALE_AFTER:
        return f"{holder.rows} held by node {holder.node} (running, seen {ago(holder.seen_at, now)} ago); {free}"
    host = holder.node.split(":", 1)[0]
    return (f"{holder.rows} held by node {holder.node} (no heartbeat: it died, or it is a `publisher send` "
            f"still running on {host}); {free}")


@click.command()
@click.argument("digest_id", required=False)
@click.option("--provider", "providers", multiple=True, metavar="NAME",
              help="Continue deliveries to this mailbox provider, paused by its circuit breaker (repeatable).")
@click.option("--wait", is_flag=True, help="Also wait out deferred messages.")
@click.pass_context
def resume(ctx: click.Context, digest_id: str | None, providers: tuple[str, ...], wait: bool) -> None:
    """Continue DIGEST_ID, paused by too many failures, once the cause is fixed; without
    DIGEST_ID, the mailbox providers a circuit breaker paused (--provider: those only)."""

    if digest_id is None:
        _resume_providers(ctx, list(providers) or None, wait)
        return
    if providers:
        raise click.UsageError("give a digest or --provider, not both")
    report = with_publisher(ctx, lambda publisher: publisher.delivery.resume(digest_id, wait=wait))
    if report is None:
        raise click.ClickException(f"no paused digest {digest_id!r} (see `publisher status`)")
    out.print(f"resumed {digest_id}: sent {report.sent}, deferred {report.deferred}, failed {report.failed}",
              highlight=False, markup=False)


def _resume_providers(ctx: click.Context, providers: list[str] | None, wait: bool) -> None:
    resumed = with_publisher(ctx, lambda publisher: publisher.delivery.resume_providers(providers, wait=wait))
    if not resumed:
        named = f" {', '.join(providers)}" if providers else ""
        raise click.ClickException(f"no paused provider{named} (see `publisher status`)")
    out.print(f"resumed deliveries to {', '.join(resumed)}; only complaints and bounces from now on count "
              f"towards their breakers", highlight=False, markup=False)


@click.command()
@click.argument("article")
@click.option("--dry-run", is_flag=True, help="Say how many subscribers it would go to; send nothing.")
@click.pass_context
def resend(ctx: click.Context, article: str, dry_run: bool) -> None:
    """Send ARTICLE again (after an important correction) to every subscriber whose topics it matches.

    ARTICLE is its id (front matter), its slug, its URL or its feed entry id.  An
    edited article only updates the feeds; this is the way to mail it again.
    """

    async def work(publisher: Publisher) -> tuple[SendResult, Remaining | None]:
        result = await publisher.delivery.resend(article, dry_run=dry_run)
        return result, None if dry_run else await publisher.delivery.remaining()  # a dry run sent nothing

    from publisher.digest.resend import UnknownArticle

    try:
        result, left = with_publisher(ctx, work)
    except UnknownArticle as exc:
        raise click.ClickException(_nothing(exc)) from None
    [digest] = result.planned
    verb = "would resend" if dry_run else "resent"
    out.print(f"{verb} {result.article_id} as {digest.id} to {digest.recipients} subscriber(s)",
              highlight=False, markup=False)
    if result.report is not None and left is not None:
        ctx.exit(_report_delivery(result.report, left))
