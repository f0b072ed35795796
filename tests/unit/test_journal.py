"""The journal of accepted messages: what a killed process wrote is there for the next one,
a living process's journal is never taken for a dead one's, and a clean end leaves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher.delivery.journal import Journal, orphans, read
from tests.support.journals import killed_with_journal


def test_every_line_written_before_a_sigkill_is_read_back_with_who_wrote_it(tmp_path: Path) -> None:
    accepted = [("instant-a", sid) for sid in range(1, 101)] + [("daily-b", 7)]
    killed_with_journal(tmp_path, "host:42:20260101T000000.000001", accepted)
    with orphans(tmp_path) as dead:
        [orphan] = dead
        assert orphan.claimant == "host:42:20260101T000000.000001"
        assert orphan.accepted == {"instant-a": list(range(1, 101)), "daily-b": [7]}
    assert list(tmp_path.iterdir()) == []  # replayed: gone, so never replayed twice


def test_a_living_process_journal_is_not_an_orphan(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, "host:1:1")
    journal.accepted("instant-a", 1)
    with orphans(tmp_path) as dead:
        assert dead == []
    journal.close()


def test_a_failed_replay_leaves_the_journal_for_the_next_try(tmp_path: Path) -> None:
    killed_with_journal(tmp_path, "host:2:2", [("instant-a", 3)])
    with pytest.raises(RuntimeError), orphans(tmp_path):
        raise RuntimeError("the database refused the replay")
    with orphans(tmp_path) as dead:
        assert [o.accepted for o in dead] == [{"instant-a": [3]}]


def test_a_confirmed_batch_is_forgotten_and_the_rest_stays(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, "host:3:3")
    journal.accepted("instant-a", 1)
    first = journal.rotate()
    journal.accepted("instant-a", 2)
    second = journal.rotate()
    journal.accepted("instant-a", 3)  # not yet handed to the ledger
    assert journal.rotate() is not None and journal.rotate() is None  # an empty segment is not rotated out
    journal.confirm(first)
    assert journal.leftovers() == {"instant-a": [2, 3]}  # handed over, never confirmed
    assert second is not None and not first.exists()  # type: ignore[union-attr]
    journal.forget_leftovers()
    assert journal.leftovers() == {}
    journal.close()
    assert list(tmp_path.iterdir()) == []


def test_a_line_cut_short_is_skipped_even_when_it_reads_as_another_subscriber(tmp_path: Path) -> None:
    segment = tmp_path / "x.1.log"
    segment.write_text("instant-a 1\ninstant-a 2\ninstant-a 3", encoding="utf-8")  # was "instant-a 35\n"
    (tmp_path / "y.1.log").write_text("instant-a 4\ninstant-a", encoding="utf-8")
    assert read([segment, tmp_path / "y.1.log"]) == {"instant-a": [1, 2, 4]}
