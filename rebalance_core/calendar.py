"""Trading-day calendars: is a date the first trading day of its week, month, quarter, year?

Calendar policies rebalance on the first trading day of each period. Holidays matter (the
first trading day of 2014 was Thursday 2 January; of September 2014, Tuesday the 2nd), so
we use the exchange's real session calendar from ``exchange_calendars`` rather than
weekday arithmetic. Results are computed once per (calendar, frequency) pair, not per fund.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import pandas as pd

DEFAULT_CALENDAR = "XNYS"

_PERIOD_CODES = {"weekly": "W-SUN", "monthly": "M", "quarterly": "Q", "annual": "Y"}


@lru_cache(maxsize=16)
def _calendar(name: str):
    import exchange_calendars as xcals

    return xcals.get_calendar(name, start="2000-01-01")


def is_trading_day(as_of: dt.date, calendar: str = DEFAULT_CALENDAR) -> bool:
    """True when the exchange holds a regular session on ``as_of``."""
    return bool(_calendar(calendar).is_session(pd.Timestamp(as_of)))


def sessions_between(start: dt.date, end: dt.date, calendar: str = DEFAULT_CALENDAR) -> list[dt.date]:
    """Trading days from ``start`` to ``end``, both included."""
    sessions = _calendar(calendar).sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))
    return [s.date() for s in sessions]


def is_period_start(as_of: dt.date, frequency: str, calendar: str = DEFAULT_CALENDAR) -> bool:
    """True when ``as_of`` is the first trading day of its ``frequency`` period.

    ``daily`` is every trading day. A date that is not a trading day is never a period start.
    """
    if frequency not in ("daily", *_PERIOD_CODES):
        raise ValueError(f"unknown frequency {frequency!r}")
    if not is_trading_day(as_of, calendar):
        return False
    if frequency == "daily":
        return True
    period = pd.Period(pd.Timestamp(as_of), freq=_PERIOD_CODES[frequency])
    first = _calendar(calendar).date_to_session(period.start_time.normalize(), direction="next")
    return first.date() == as_of


def period_starts(as_of: dt.date, calendar: str = DEFAULT_CALENDAR) -> dict[str, bool]:
    """For each frequency, whether ``as_of`` starts a period (one calendar lookup each)."""
    return {f: is_period_start(as_of, f, calendar) for f in ("daily", *_PERIOD_CODES)}


def previous_session(as_of: dt.date, calendar: str = DEFAULT_CALENDAR) -> dt.date:
    """The last trading day strictly before ``as_of``."""
    cal = _calendar(calendar)
    return cal.date_to_session(pd.Timestamp(as_of) - pd.Timedelta(days=1), direction="previous").date()


def next_session(as_of: dt.date, calendar: str = DEFAULT_CALENDAR) -> dt.date:
    """The first trading day strictly after ``as_of``: when the market next opens."""
    cal = _calendar(calendar)
    return cal.date_to_session(pd.Timestamp(as_of) + pd.Timedelta(days=1), direction="next").date()


def sessions_after(dates, days, calendar: str = DEFAULT_CALENDAR):
    """The ``days``-th trading day after each of ``dates`` (datetime64 arrays; vectorized)."""
    import numpy as np

    sessions = _calendar(calendar).sessions
    sessions = (sessions.tz_localize(None) if sessions.tz is not None else sessions).to_numpy()
    position = np.searchsorted(sessions, np.asarray(dates, dtype="datetime64[ns]"), side="right") - 1
    return sessions[np.minimum(position + np.asarray(days, dtype="int64"), len(sessions) - 1)]
