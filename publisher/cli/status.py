"""``publisher status``: the live nodes, the scheduled articles, the deliveries and webhooks to do, the latest digests.

It reads what the nodes publish about themselves (heartbeats) and the ledger, so it
shows a daemon running anywhere that shares the database, not just on this machine.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import click

from publisher import clock
from publisher.cli.context import with_publisher
from publisher.cli.output import ago, out, when
from publisher.cli.webhooks import print_endpoints
from publisher.content.model import Article

if TYPE_CHECKING:
    from publisher.app import Publisher
    from publisher.delivery.gates import Overview as GatesOverview
    from publisher.delivery.ledger import DigestSummary
    from publisher.runtime.nodes import Node
    from publisher.webhooks.outbox import EndpointStatus


@dataclass(frozen=True)
class Overview:
    """What ``publisher status`` shows, read before anything is printed."""

    nodes: list[Node]  # the live ones
    scheduled: list[Article]
    totals: dict[str, int]  # messages of unfinished digests by state
    digests: list[DigestSummary]
    webhooks: list[EndpointStatus]
    gates: GatesOverview  # warm-up and circuit breakers per mailbox provider


async def _overview(publisher: Publisher) -> Overview:
    return Overview(
        await publisher.live_nodes(), await publisher.intake.scheduled(),
        await publisher.delivery.totals(), await publisher.delivery.states(), await publisher.webhooks.status(),
        await publisher.delivery.gates(),
    )


@click.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """The running daemon (next job runs, last scan, recent errors), deliveries to do, the latest digests."""
    from rich.table import Column, Table

    from publisher.delivery.model import DigestState

    seen = with_publisher(ctx, _overview)
    totals, states = seen.totals, seen.digests
    _print_nodes(seen.nodes)
    _print_scheduled(seen.scheduled)
    to_do = ", ".join(f"{totals.get(state, 0)} {state}" for state in ("pending", "sending", "deferred", "failed"))
    out.print(f"deliveries of unfinished digests: {to_do}", highlight=False)
    _print_gates(seen.gates)
    print_endpoints(seen.webhooks)
    out.print()
    counted = ("pending", "sending", "deferred", "sent", "failed", "cancelled")
    labels = ("pend", "send", "defer", "sent", "fail", "cncl")  # narrow: fits 80 columns
    table = Table(
        Column("digest", no_wrap=True), Column("status", no_wrap=True),
        *(Column(label, justify="right", no_wrap=True) for label in labels), box=None,
    )
    for d in states:
        counts = d.counts
        table.add_row(
            d.id, d.status,
            *(str(counts.get(state, 0)) for state in counted),
        )
    out.print(table)
    for d in states:
        if d.status == DigestState.PAUSED:
            out.print(f"{d.id} paused: {d.pause_reason}\n  continue with: publisher resume {d.id} (take an "
                      f"article out first: publisher digests drop-article {d.id} ARTICLE; give up: publisher "
                      f"digests cancel {d.id})", highlight=False, markup=False)
        elif d.status == DigestState.FINISHED and d.pause_reason:
            out.print(f"{d.id} finished early: {d.pause_reason}", highlight=False, markup=False)
    if not states:
        out.print("no digests yet", highlight=False)


def _print_gates(gates: GatesOverview) -> None:
    """The warm-up's day and allowance, the providers it holds back, the breakers' warnings and pauses."""
    if gates.allowance is not None:
        out.print(f"warm-up day {gates.warmup_day}: {gates.allowance} messages per provider today; "
                  f"held messages go from {when(gates.next_day)}", highlight=False, markup=False)
        for provider in sorted({*gates.sent_today, *gates.waiting}):
            out.print(f"  {provider}: sent today {gates.sent_today.get(provider, 0)} of {gates.allowance}, "
                      f"waiting {gates.waiting.get(provider, 0)}", highlight=False, markup=False)
    paused = {row.provider for row in gates.paused}
    for row in gates.paused:
        out.print(f"provider {row.provider} paused since {when(row.since)}: {row.reason}\n  continue with: "
                  f"publisher resume --provider {row.provider}", highlight=False, markup=False)
    for judgement in gates.judgements:
        if judgement.provider not in paused:
            level = "past its pause threshold (paused at the next delivery)" if judgement.pause else "warning"
            out.print(f"provider {judgement.provider} {level}: {judgement.reason}", highlight=False, markup=False)


def _print_scheduled(articles: list[Article]) -> None:
    """The articles waiting for their date, soonest first."""
    if not articles:
        return
    out.print("scheduled articles:", highlight=False)
    for article in articles:
        out.print(f"  {article.id}  {when(article.published)}  {article.title}", highlight=False, markup=False)
    out.print()


def _print_nodes(running: list[Node]) -> None:
    from publisher.runtime.nodes import STALE_AFTER

    if not running:
        out.print("daemon: not running (no heartbeat in the last "
                  f"{STALE_AFTER.total_seconds():.0f} s)", highlight=False)
        out.print()
        return
    now = clock.now()
    rate = sum(float(node.state.get("send_rate", 0)) for node in running)
    roles = Counter(node.role for node in running)
    out.print(f"nodes: {len(running)} live ({', '.join(f'{n} {role}' for role, n in sorted(roles.items()))}), "
              f"sending {rate:,.0f} messages/s in all", highlight=False, markup=False)
    if "leader" not in roles:
        out.print("  no node runs the schedule: a standby takes it over within [cluster] failover",
                  highlight=False, markup=False)
    for node in running:
        state = node.state
        out.print(f"{node.role}: pid {node.pid} on {node.host}, up {ago(node.started_at, now)}, "
                  f"seen {ago(node.seen_at, now)} ago", highlight=False, markup=False)
        out.print(f"  sending {float(state.get('send_rate', 0)):,.0f} messages/s, "
                  f"{int(state.get('sent', 0)):,} sent since it started", highlight=False, markup=False)
        if node.role == "leader":
            scanned = state.get("last_scan_at")
            out.print(f"  last scan: {ago(datetime.fromisoformat(scanned), now) + ' ago' if scanned else 'not yet'}",
                      highlight=False, markup=False)
        if problem := state.get("static_files_problem"):
            out.print(f"  static feed files: {problem}", highlight=False, markup=False)
        for job, at in sorted(state.get("jobs", {}).items()):
            next_run = f"in {ago(now, datetime.fromisoformat(at))}" if at else "paused"
            out.print(f"  next {job}: {next_run}", highlight=False, markup=False)
        for problem in state.get("errors", []):
            out.print(f"  {problem['at']} {problem['level']}: {problem['message']}", highlight=False, markup=False)
        out.print()
