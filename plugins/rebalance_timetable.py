"""Airflow plugin: a timetable that runs on the exchange's trading days only.

``TradingDayTimetable("18:30", "America/New_York", "XNYS")`` schedules one run per trading
session of the calendar, at that local time, skipping weekends and exchange holidays (Good
Friday, Thanksgiving, ... from ``exchange_calendars``). Like Airflow 3's cron trigger
timetable, a run's logical date is the moment it is due, so its date in the timetable's
timezone is the business date.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from airflow.plugins_manager import AirflowPlugin
from airflow.timetables.base import DagRunInfo, DataInterval, Timetable

if TYPE_CHECKING:
    from airflow.timetables.base import TimeRestriction
    from pendulum import DateTime

# How far ahead to look for the next session (covers any run of holidays).
_SEARCH_DAYS = 14


class TradingDayTimetable(Timetable):
    def __init__(self, at: str = "18:30", timezone: str = "America/New_York", calendar: str = "XNYS") -> None:
        self.at, self.timezone, self.calendar = at, timezone, calendar
        self._time = dt.time.fromisoformat(at)
        self._zone = ZoneInfo(timezone)

    @property
    def summary(self) -> str:
        return f"{self.calendar} trading days at {self.at} {self.timezone}"

    @property
    def description(self) -> str:
        return f"Every trading session of {self.calendar} (holidays skipped), at {self.at} {self.timezone}"

    def serialize(self) -> dict[str, Any]:
        return {"at": self.at, "timezone": self.timezone, "calendar": self.calendar}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> TradingDayTimetable:
        return cls(data["at"], data["timezone"], data["calendar"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TradingDayTimetable) and self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash(tuple(self.serialize().items()))

    def run_time(self, session: dt.date) -> dt.datetime:
        """When the run of ``session`` is due, in UTC."""
        return dt.datetime.combine(session, self._time, self._zone).astimezone(dt.UTC)

    def next_run_after(self, moment: dt.datetime) -> dt.datetime:
        """The first run due at or after ``moment``."""
        from rebalance_core.calendar import sessions_between

        local_day = moment.astimezone(self._zone).date()
        for session in sessions_between(local_day, local_day + dt.timedelta(days=_SEARCH_DAYS), self.calendar):
            due = self.run_time(session)
            if due >= moment:
                return due
        raise ValueError(f"no {self.calendar} session within {_SEARCH_DAYS} days of {moment}")

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        return DataInterval.exact(run_after)

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction) -> DagRunInfo | None:
        if last_automated_data_interval is not None:
            start = last_automated_data_interval.end + dt.timedelta(seconds=1)
        elif restriction.earliest is None:
            return None
        elif not restriction.catchup:
            start = max(restriction.earliest, dt.datetime.now(dt.UTC))
        else:
            start = restriction.earliest
        due = self.next_run_after(start)
        if restriction.latest is not None and due > restriction.latest:
            return None
        import pendulum

        return DagRunInfo.exact(pendulum.instance(due))


class RebalanceTimetablePlugin(AirflowPlugin):
    name = "rebalance_timetable"
    timetables = [TradingDayTimetable]
