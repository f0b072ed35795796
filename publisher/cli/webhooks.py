"""``publisher webhooks send``: send the events owed to ``[[webhooks]]`` now (the daemon does it every poll)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from publisher.cli.context import ExitCode, with_publisher
from publisher.cli.output import out, when

if TYPE_CHECKING:
    from publisher.app import Publisher
    from publisher.webhooks.outbox import EndpointStatus


@click.group("webhooks")
def group() -> None:
    """Outgoing webhooks: events POSTed, signed, to the [[webhooks]] endpoints."""


@group.command("send")
@click.pass_context
def send(ctx: click.Context) -> None:
    """Send every event due now, once each (failures wait their backoff); exit 4 if events are still owed."""

    async def work(publisher: Publisher) -> tuple[tuple[int, int], list[EndpointStatus]]:
        return await publisher.webhooks.send_due(), await publisher.webhooks.status()

    (sent, failed), endpoints = with_publisher(ctx, work)
    out.print(f"{sent} events acknowledged, {failed} attempts failed", highlight=False)
    print_endpoints(endpoints)
    ctx.exit(ExitCode.REMAINING if any(endpoint.pending for endpoint in endpoints) else ExitCode.OK)


def print_endpoints(endpoints: list[EndpointStatus]) -> None:
    """Each endpoint: what it is owed, how much of it failed, its last error (``status`` too)."""
    for e in endpoints:
        out.print(f"webhook {e.url}: {e.pending} pending, {e.failing} failing", highlight=False, markup=False)
        if e.last_error:
            out.print(f"  last error {when(e.last_error_at)}: {e.last_error}", highlight=False, markup=False)
