"""The replay's checks: the same results and faults as the night's GX run, for less.

``validation.validate(record=False)`` (the replay's call) proves with pandas that a suite's
rows all pass and runs GX only on a suite that may fail; a ``SuiteMemo`` reuses a suite's
outcome while its rows do not change. Both must give exactly what GX gives the night.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from conftest import small_landing, write

from rebalance_pipeline import landing, validation

AS_OF = dt.date(2014, 1, 3)


def _edit(folder: Path, name: str, change) -> None:
    rows = pd.read_csv(folder / name, dtype=str)
    write(folder, name, change(rows))


def _set(row: int, column: str, value):
    def change(rows: pd.DataFrame) -> pd.DataFrame:
        rows[column] = rows[column].astype(object)
        rows.loc[row, column] = value
        return rows
    return change


# One landing per kind of expectation the suites use, each with a row that fails it.
CORRUPTIONS = {
    "clean": [],
    "negative_price": [("prices.csv", _set(0, "close_price", "-1"))],           # between, strict
    "missing_price": [("prices.csv", _set(1, "close_price", ""))],              # not null
    "priced_twice": [("prices.csv", lambda r: pd.concat([r, r.head(1)], ignore_index=True))],   # unique
    "targeted_twice": [("targets.csv", lambda r: pd.concat([r, r.head(1)], ignore_index=True))],  # compound
    "weights_off": [("targets.csv", _set(0, "target_weight", "0.7"))],          # sums, between with max
    "bad_policy": [("funds.csv", _set(2, "policy", "sometimes"))],              # in set (a choice)
    "unknown_security": [("positions.csv", _set(0, "security_id", "NOPE"))],    # in set [True]
    "negative_quantity": [("positions.csv", _set(4, "quantity", "-5"))],        # between, no max
}


def _frames(tmp_path: Path, corruption: str) -> dict[str, pd.DataFrame]:
    folder = small_landing(tmp_path / "landing", AS_OF)
    for name, change in CORRUPTIONS[corruption]:
        _edit(folder, name, change)
    frames, _ = landing.read_landing(tmp_path / "landing", AS_OF)
    return frames


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_the_replays_checks_give_what_gx_gives_the_night(tmp_path, corruption):
    frames = _frames(tmp_path, corruption)
    night = validation.validate(frames)
    replay = validation.validate(frames, memo=validation.SuiteMemo(), record=False)
    assert (len(night.faults) == 0) == (corruption == "clean")
    pd.testing.assert_frame_equal(replay.results, night.results)
    pd.testing.assert_frame_equal(replay.faults, night.faults)
    assert replay.gx_results.empty and len(night.gx_results)


def test_a_clean_day_needs_no_gx_in_the_replay(tmp_path, monkeypatch):
    frames = _frames(tmp_path, "clean")

    def no_gx():
        raise AssertionError("GX was used on rows pandas proves passing")

    monkeypatch.setattr(validation, "_gx_session", no_gx)
    outcome = validation.validate(frames, record=False)
    assert outcome.results["success"].all() and outcome.faults.empty


def test_a_suite_runs_again_only_when_its_rows_change(tmp_path):
    memo = validation.SuiteMemo()
    bad = _frames(tmp_path / "bad", "negative_price")
    first = validation.validate(bad, memo=memo, record=False)
    ran = memo.ran
    assert ran >= 1 and memo.reused == 0
    again = validation.validate(bad, memo=memo, record=False)
    assert memo.ran == ran and memo.reused >= 1            # the same rows: GX not run again
    pd.testing.assert_frame_equal(again.faults, first.faults)
    # The next day's prices are fine: the prices suite is judged again, and passes.
    fixed = dict(bad, prices=_frames(tmp_path / "good", "clean")["prices"])
    assert validation.validate(fixed, memo=memo, record=False).faults.empty
    assert not validation.validate(bad, memo=memo, record=False).faults.empty
