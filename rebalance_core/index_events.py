"""Index events: an ``index_tracking`` fund trades into an announced index change on its eve.

An index is a model (model_targets.csv) whose next version is announced ahead with an
``effective_date`` E; ``rebalance_core.models`` keeps such a version without applying it
early. A fund with ``index_tracking = true`` must hold the new index when E opens, so it
trades into it at the close of the last trading day before E on its own exchange calendar
(funds.csv ``calendar``): its eve. A holiday before E moves the eve earlier.

One rule covers the eve, reruns and late announcements: on the night of date d an
index-tracking fund follows the version of its model **in force when its market next
opens** (the first session after d on its calendar), among the versions known on d
(announced in a folder dated d or earlier). On its eve that is the announced version; on
every other night it is the version in force on d itself. So:

- the eve trades to the new version's targets (trigger and reason ``index_event``),
  whatever the fund's bands or calendar; a fund on the same model without
  ``index_tracking`` does not (it gets ``model_change`` on E, as before);
- on E the fund's targets are those it took on its eve, so comparing them with its
  previous business date's (resolved by this same rule) finds no change: it does not trade
  the index change a second time as ``model_change``;
- an announcement that arrives after the eve's night (a folder dated later than the eve but
  before E, e.g. a day the fund's exchange is closed) is traded on the first night that
  knows it, still before E; one that arrives on E itself (or later) is simply in force and
  becomes ``model_change`` on E (the eve's night could not know it);
- a fund blocked on its eve did not trade it; on E it is compared with its last night not
  blocked (before the eve), so it trades the change then as ``model_change``;
- a rerun of a date resolves the same versions (only those known on the date), so it finds
  the same proposal.

Vectorized: one calendar lookup per distinct exchange, one ``targets_in_force`` per
distinct next-session date (a handful), joins for the rest.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from rebalance_core.calendar import DEFAULT_CALENDAR, next_session
from rebalance_core.models import changed_targets, fund_models, isin_ids, targets_in_force
from rebalance_core.schema import TRUE_WORDS


def flag(funds: pd.DataFrame, column: str) -> pd.Series:
    """A true/false funds.csv column per fund (index fund_id); missing or empty is False."""
    if column not in funds:
        return pd.Series(False, index=pd.Index(funds["fund_id"].unique(), name="fund_id"))
    rows = funds.drop_duplicates("fund_id")
    values = rows[column]
    # True (a bool from the warehouse) reads "true" too.
    as_text = values.astype("object").where(values.notna(), "").astype(str).str.strip().str.lower()
    return pd.Series(as_text.isin(TRUE_WORDS).to_numpy(dtype=bool), index=pd.Index(rows["fund_id"].to_numpy(),
                                                                                 name="fund_id"))


def fund_calendars(funds: pd.DataFrame) -> pd.Series:
    """The exchange calendar of each fund (index fund_id), ``DEFAULT_CALENDAR`` when empty."""
    rows = funds.drop_duplicates("fund_id")
    if "calendar" not in rows:
        return pd.Series(DEFAULT_CALENDAR, index=pd.Index(rows["fund_id"].to_numpy(), name="fund_id"))
    calendars = rows["calendar"].astype("object").where(rows["calendar"].notna(), "").astype(str).str.strip()
    calendars = calendars.where(calendars != "", DEFAULT_CALENDAR)
    return pd.Series(calendars.to_numpy(), index=pd.Index(rows["fund_id"].to_numpy(), name="fund_id"))


def night_targets(as_of: dt.date, funds: pd.DataFrame, fund_targets: pd.DataFrame,
                  model_targets: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.Index]:
    """Each fund's targets for the night of ``as_of`` and the funds trading an index event.

    ``targets_in_force`` for every fund, except that an index-tracking fund on a model takes
    the version in force at its market's next open among those known on ``as_of``. Returns
    (targets with model_id, the index-tracking funds whose targets tonight differ from those
    in force on ``as_of``: they trade into the announced version now)."""
    targets = targets_in_force(as_of, funds, fund_targets, model_targets)
    none = pd.Index([], name="fund_id")
    if model_targets is None or model_targets.empty or targets.empty:
        return targets, none
    tracking = flag(funds, "index_tracking")
    on_model = fund_models(funds).reindex(tracking.index)
    trackers = tracking.index[tracking.to_numpy() & on_model.notna().to_numpy()]
    if trackers.empty:
        return targets, none
    valid_from = pd.to_datetime(model_targets["valid_from"], errors="coerce").dt.normalize()
    known = model_targets[(valid_from <= pd.Timestamp(as_of)).to_numpy()]
    calendars = fund_calendars(funds).reindex(trackers)
    next_open = calendars.map({c: next_session(as_of, c) for c in calendars.unique()})
    tracker_funds = funds.drop_duplicates("fund_id").set_index("fund_id").loc[trackers].reset_index()
    ahead_parts = []
    for opens, ids in next_open.groupby(next_open).groups.items():
        subset = tracker_funds[tracker_funds["fund_id"].isin(ids)]
        ahead_parts.append(targets_in_force(opens, subset, fund_targets.iloc[0:0], known))
    ahead = pd.concat(ahead_parts, ignore_index=True)
    if ahead.empty:
        return targets, none
    tonight = targets[isin_ids(targets["fund_id"], trackers)]
    moving = changed_targets(ahead, tonight)
    if moving.empty:
        return targets, none
    kept = targets[~isin_ids(targets["fund_id"], moving)]
    taken = ahead[isin_ids(ahead["fund_id"], moving)]
    return pd.concat([kept, taken], ignore_index=True), moving
