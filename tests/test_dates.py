"""Which business date an Airflow run processes (rebalance_pipeline.dates)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from rebalance_pipeline.dates import resolve_as_of_date

NY = ZoneInfo("America/New_York")


def test_the_param_wins():
    assert resolve_as_of_date("2014-01-03", dt.datetime(2020, 5, 5, tzinfo=dt.UTC)) == dt.date(2014, 1, 3)


def test_a_date_typed_by_a_person_is_taken_as_it_is():
    # `airflow dags test rebalance_nightly 2014-01-03` → logical date 2014-01-03T00:00Z,
    # which is still 2 January in New York.
    assert resolve_as_of_date(None, dt.datetime(2014, 1, 3, tzinfo=dt.UTC)) == dt.date(2014, 1, 3)


@pytest.mark.parametrize("day", [dt.date(2014, 1, 3), dt.date(2014, 7, 3), dt.date(2014, 11, 3)])
def test_a_scheduled_run_processes_its_own_evening_in_new_york(day):
    # 18:30 New York is 23:30 UTC in winter and 22:30 UTC in summer: same date either way.
    due = dt.datetime.combine(day, dt.time(18, 30), NY)
    assert resolve_as_of_date(None, due.astimezone(dt.UTC)) == day


def test_a_late_schedule_still_maps_to_the_new_york_date():
    # 20:30 New York in summer is 00:30 UTC the next day.
    due = dt.datetime(2014, 7, 3, 20, 30, tzinfo=NY)
    assert resolve_as_of_date(None, due.astimezone(dt.UTC)) == dt.date(2014, 7, 3)


def test_manual_run_without_logical_date_uses_run_after():
    run_after = dt.datetime(2014, 1, 3, 23, 45, tzinfo=dt.UTC)
    assert resolve_as_of_date(None, None, run_after) == dt.date(2014, 1, 3)
    with pytest.raises(ValueError, match="no as_of_date param, logical date or run_after"):
        resolve_as_of_date(None, None, None)
