"""The delivery pace: a steady rate and a sliding window, on a simulated clock."""

from __future__ import annotations

import pytest

from publisher.delivery.pacing import Backoff, Lane, LocalSlots, Pacer
from tests.support.fake_time import FakeTime


async def send_times(pacer: Pacer, time: FakeTime, count: int) -> list[float]:
    times = []
    for _ in range(count):
        await pacer.wait()
        times.append(round(time.now - 1000.0, 6))
    return times


async def test_rate_spaces_messages_evenly() -> None:
    time = FakeTime()
    pacer = Pacer(rate=4, window_messages=0, window_seconds=60, clock=time.clock, sleep=time.sleep)
    assert await send_times(pacer, time, 5) == [0.0, 0.25, 0.5, 0.75, 1.0]


async def test_window_holds_messages_until_the_oldest_leaves_it() -> None:
    time = FakeTime()
    pacer = Pacer(rate=0, window_messages=3, window_seconds=10, clock=time.clock, sleep=time.sleep)
    assert await send_times(pacer, time, 7) == [0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 20.0]


async def test_rate_and_window_together() -> None:
    time = FakeTime()
    pacer = Pacer(rate=10, window_messages=2, window_seconds=1, clock=time.clock, sleep=time.sleep)
    assert await send_times(pacer, time, 4) == [0.0, 0.1, 1.0, 1.1]


async def test_no_limits_never_waits() -> None:
    time = FakeTime()
    pacer = Pacer(rate=0, window_messages=0, window_seconds=1, clock=time.clock, sleep=time.sleep)
    assert pacer.unlimited
    assert await send_times(pacer, time, 3) == [0.0, 0.0, 0.0]


def test_backoff_doubles_up_to_its_limit_and_resets() -> None:
    backoff = Backoff(0.5, limit=3)
    assert [backoff.next_pause() for _ in range(4)] == [0.5, 1.0, 2.0, 3.0]
    backoff.reset()
    assert backoff.next_pause() == pytest.approx(0.5)


# --- a provider's lane ---------------------------------------------------------------------


async def test_lane_spaces_its_messages_at_its_rate_and_leaves_far_slots_untaken() -> None:
    time = FakeTime()
    lane = Lane("google", rate=4, concurrency=0, pause_base=1.0, clock=time.clock, sleep=time.sleep)
    assert [await lane.take(horizon=0.3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert time.now - 1000.0 == pytest.approx(0.5)  # slots at 0, 0.25, 0.5
    lane.succeeded()
    # The next slot is 0.25 s away: within a horizon of 0.3, not of 0.1 (nothing taken then).
    assert await lane.take(horizon=0.1) == pytest.approx(0.25)
    assert await lane.take(horizon=0.3) == 0.0


async def test_a_throttle_halves_the_rate_once_per_burst_and_successes_win_it_back() -> None:
    time = FakeTime()
    lane = Lane("google", rate=8, concurrency=0, pause_base=2.0, clock=time.clock, sleep=time.sleep)
    await lane.take()
    epoch = lane.epoch
    assert lane.throttled(epoch) == 1
    assert lane.rate == 4
    assert lane.throttled(epoch) == 2  # in flight with the first: no second cut
    assert lane.rate == 4
    assert await lane.take(horizon=0.5) == pytest.approx(2.0)  # the pause: not taken
    for _ in range(25):
        lane.succeeded()
    assert lane.rate == 8 and lane.throttled_in_a_row == 0  # back at its configured rate, no further


async def test_an_unlimited_lane_is_cut_from_the_rate_it_went_at_then_is_unlimited_again() -> None:
    time = FakeTime()
    lane = Lane("other", rate=0, concurrency=0, pause_base=0.0, clock=time.clock, sleep=time.sleep)
    for _ in range(11):
        await lane.take()
        time.now += 0.01  # 100 messages a second
    assert lane.rate is None
    lane.throttled(lane.epoch)
    assert lane.rate == pytest.approx(50, rel=0.1)
    for _ in range(30):
        lane.succeeded()
    assert lane.rate is None


async def test_a_lane_full_of_messages_in_flight_takes_no_more() -> None:
    lane = Lane("yahoo", rate=0, concurrency=2, pause_base=1.0)
    assert [await lane.take(horizon=0.01) for _ in range(2)] == [0.0, 0.0]
    assert await lane.take(horizon=0.01) == pytest.approx(0.01)  # full: nothing taken
    lane.release()
    assert await lane.take(horizon=0.01) == 0.0



async def test_local_slots_are_booked_at_the_rate_given_each_time_and_held_back_by_a_pause() -> None:
    time = FakeTime()
    slots = LocalSlots(time.clock)
    assert [await slots.book(4, horizon=0.3) for _ in range(2)] == [pytest.approx(-1000.0), pytest.approx(0.25)]
    assert await slots.book(2, horizon=0.3) == pytest.approx(0.5)  # too far: not booked
    time.now += 0.5
    assert await slots.book(2, horizon=0.0) == 0.0  # booked at 2/s: the next is 0.5 s on
    assert await slots.book(None, horizon=0.0) == pytest.approx(0.5)  # no rate: only waits, books nothing
    slots.pause(3.0)
    assert await slots.book(None, horizon=0.0) == pytest.approx(3.0)
