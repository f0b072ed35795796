"""Pacing per mailbox provider: a provider that throttles slows alone (issue 19).

Gmail (the server's ``throttle_domain``) answers "421 4.7.28 ... rate limited" past a few
recipients per window, as it does per minute (the window is a second here, so the test
doesn't wait minutes); every other recipient is accepted.  The others must go at the speed
they go without Gmail in the list, Gmail's all arrive later, nobody fails, nobody twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.store.test_delivery_faults import assert_none_lost_none_twice, pipelining, reader, send_digest
from tests.support.delivery_sites import write_site
from tests.support.smtp_faults import FaultServer

__all__ = ["pipelining"]  # the fixture, shared with the fault tests

N = 600
GMAIL_PER_WINDOW = 40  # RCPTs to gmail.com the server takes per window ...
WINDOW = 1.0  # ... of this many seconds


def subscriber(i: int) -> str:
    """Every third subscriber is at Gmail, the others at a domain of provider "other"."""
    return f"reader{i:03d}@gmail.com" if i % 3 == 0 else reader(i)


def is_gmail(address: str) -> bool:
    return address.endswith("@gmail.com")


@pytest.mark.usefixtures("database")
async def test_a_throttling_provider_slows_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pipelining: bool
) -> None:
    everyone = [subscriber(i) for i in range(1, N + 1)]
    others = [a for a in everyone if not is_gmail(a)]

    with FaultServer(pipelining=pipelining, keep_content=False) as plain:
        config = write_site(tmp_path / "plain", smtp_port=plain.port, smtp="timeout = 2")
        alone = await send_digest(config, others)
    assert_none_lost_none_twice(alone, plain, others)
    others_alone = max(a.at for a in plain.accepted) - alone.started

    with FaultServer(pipelining=pipelining, keep_content=False) as server:
        server.throttle_domain("gmail.com", GMAIL_PER_WINDOW, window=WINDOW)
        config = write_site(tmp_path / "throttled", smtp_port=server.port, smtp="timeout = 2")
        outcome = await send_digest(config, everyone)

    assert_none_lost_none_twice(outcome, server, everyone)
    assert all(r.state == "sent" for r in outcome.rows.values()), "throttling failed nobody"
    assert server.counters.domain_throttled > 0, "Gmail did throttle"
    arrived = {a.rcpt_tos[0]: a.at - outcome.started for a in server.accepted}
    others_last = max(t for a, t in arrived.items() if not is_gmail(a))
    gmail_times = sorted(t for a, t in arrived.items() if is_gmail(a))
    gmail_count = len(gmail_times)
    # The others at full speed: about as fast as without Gmail in the list. Timings are
    # noisy on a shared CI machine (×2.1 seen with xdist beside), so the bound is loose; a
    # throttling provider that holds the pass back costs the others several Gmail windows
    # (3.6–4.5 s against 0.75 s alone before the lanes).
    assert others_last <= 2.0 * others_alone + 1.0, (others_last, others_alone)
    # Gmail's later, at the pace it allows: over as many windows as it takes (the first and
    # the last maybe short ones).
    assert gmail_times[-1] > others_last
    assert gmail_times[-1] - gmail_times[0] >= (gmail_count // GMAIL_PER_WINDOW - 2) * WINDOW
    with capsys.disabled():
        print(
            f"\n[provider lanes, {'pipelined' if pipelining else 'classic'}] other: {len(others)} in "
            f"{others_alone:.2f} s alone ({len(others) / others_alone:.0f}/s), in {others_last:.2f} s beside a "
            f"throttling Gmail ({len(others) / others_last:.0f}/s, x{others_last / others_alone:.2f}); "
            f"gmail: {gmail_count} in {gmail_times[-1]:.2f} s ({gmail_count / gmail_times[-1]:.1f}/s; server allows "
            f"{GMAIL_PER_WINDOW / WINDOW:.0f}/s), {server.counters.domain_throttled} x 421"
        )
