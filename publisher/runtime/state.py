"""What this process knows about itself as a node: its role and its recent work.

The daemon sets the role and whether its schedule runs; the services report what
they did (a scan finished, messages sent) through callbacks the composition root
wires here.  ``/readyz`` and the heartbeat behind ``publisher status`` read it.  It
imports nothing of the publisher, so a service can import it without pulling in the
daemon, the scheduler or the web server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class NodeRole(StrEnum):
    """What a process does in the service (stored in its heartbeat row as the value)."""

    CLI = "cli"  # a command: no schedule, no heartbeat
    LEADER = "leader"  # runs the schedule (scan, digest planner, feed fetcher), serves the web, delivers
    STANDBY = "standby"  # serves the web and delivers; campaigns to lead (PostgreSQL)
    WORKER = "worker"  # only delivers (``publisher worker``)


class JobName(StrEnum):
    """The background jobs of a node, by the name the scheduler, the log and the heartbeat use."""

    SCAN = "scan"
    DIGESTS = "digests"
    FEEDS = "feeds"
    RELEASE = "release"
    PURGE = "purge"  # pending sign-ups never confirmed, deleted after [subscribers] purge_pending_after
    DELIVER = "deliver"
    HEARTBEAT = "heartbeat"
    REFRESH = "refresh"
    WEBHOOKS = "webhooks"
    WATCH = "watch"
    RELOAD = "reload"


@dataclass
class NodeState:
    """This process's facts as a node; one per process, held by the composition root."""

    node_id: str  # its claims on deliveries and its heartbeat row carry this id
    role: NodeRole = NodeRole.CLI
    last_scan_at: datetime | None = None  # when the last scan finished (readiness, status)
    sent_total: int = 0  # messages this process delivered (its send rate, in publisher status)
    scheduler_running: bool = False  # the daemon's schedule runs (readiness)

    def scanned(self, at: datetime) -> None:
        """A scan finished at ``at`` (the intake's ``on_scanned``)."""
        self.last_scan_at = at
