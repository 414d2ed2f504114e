"""Which business date an Airflow run processes.

Resolved once, in the DAG's first task, in this order:

1. the run's ``as_of_date`` param, when a person gave one (backfills, reruns);
2. the run's logical date. In Airflow 3 a cron-scheduled run's logical date is the moment
   it is due (18:30 New York on the business date itself, not the start of an interval
   as in Airflow 2), so its date *in the schedule's timezone* is the business date. A date
   typed by a person (``airflow dags test rebalance_nightly 2014-01-03``, a trigger with
   ``--logical-date 2014-01-03``) arrives as midnight UTC: that date is taken as it is,
   rather than shifted to the previous evening in New York;
3. a manual run with no logical date at all: its run_after, in the schedule's timezone.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

SCHEDULE_TIMEZONE = "America/New_York"


def resolve_as_of_date(param: str | None, logical_date: dt.datetime | None, run_after: dt.datetime | None = None,
                       timezone: str = SCHEDULE_TIMEZONE) -> dt.date:
    if param:
        return dt.date.fromisoformat(str(param))
    moment = logical_date or run_after
    if moment is None:
        raise ValueError("no as_of_date param, logical date or run_after to take the business date from")
    utc = moment.astimezone(dt.UTC)
    if logical_date is not None and utc.time() == dt.time(0, 0):
        return utc.date()
    return moment.astimezone(ZoneInfo(timezone)).date()
