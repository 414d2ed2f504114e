"""What a fund carries from one night to the next: its FUND STATE.

``next_fund_state(as_of, previous_state, facts)`` computes tonight's state of every fund
from the state of its previous night and tonight's facts, vectorized over all funds. The
nightly run stores it (``rebalance.fund_state``) and the next night reads it back; the
replay carries it from day to day the same way. Nothing here reads the machine's clock:
a backfill, a rerun or a replay decides as the live nights did.

A fund's state holds (``FUND_STATE_COLUMNS``):

- ``targets_key``: a hash of its targets in force (its sorted security and weight rows,
  zero weights left out), so the next night knows whether they changed;
- ``model_change_since``: the night its targets last changed while the change is pending.
  Set when tonight's targets differ from the previous state's; it stays (the fund keeps the
  trigger ``model_change`` whatever its policy) until a proposal of that date or later is
  executed in full, or until the fund's holdings are within its bands of the new targets
  (no breach tonight). A superseded or rejected proposal does not end it. A fund blocked by
  validation tonight carries its previous targets and pending change unchanged (tonight's
  facts about it are not trusted), so a change it could not trade is traded once it can;
- ``awaiting_*``: its approved proposal whose orders are not known to be done: the fund is
  blocked (the reason names the proposal) until executions report every order filled or
  cancelled (executions.csv or an operator's word, cumulative over dates), or the positions
  of a later date show the trades done, or the approval expires ``execution_expiry_days``
  business days after the proposal's date (funds.csv; ``DEFAULT_EXECUTION_EXPIRY_DAYS``);
- ``closed_*``: the last approved proposal whose wait ended, how (``executed``,
  ``cancelled``, ``expired``), on which night and from which source (``file``,
  ``operator``, ``positions``, ``expiry``), so it is not awaited again;
- ``compliance_failing``: the compliance rules its holdings fail tonight (comma-joined);
- ``note``: what changed in the state tonight, in words for a person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rebalance_core import lifecycle
from rebalance_core.calendar import DEFAULT_CALENDAR, sessions_after

# The one declaration of the state's columns: the core, the warehouse table and the replay use it.
FUND_STATE_COLUMNS = [
    "as_of_date", "fund_id", "targets_key", "model_change_since",
    "awaiting_proposal_id", "awaiting_proposal_date", "awaiting_approved_at", "awaiting_expires_on",
    "closed_proposal_id", "closed_outcome", "closed_on", "closed_by",
    "compliance_failing", "note",
]
DATE_COLUMNS = ("as_of_date", "model_change_since", "awaiting_proposal_date", "awaiting_expires_on", "closed_on")

# One row per order of each fund's latest approved proposal of an earlier date (a proposal
# with no trades has one row with security_id null). quantity_before: the fund's position in
# the security on the proposal's night (fund_drift), 0 when it held none.
APPROVED_COLUMNS = ["fund_id", "proposal_id", "proposal_date", "approved_at", "security_id", "side", "quantity",
                    "quantity_before"]
# What the order desk (executions.csv), an operator or the positions said was done.
EXECUTION_COLUMNS = ["fund_id", "proposal_id", "security_id", "side", "quantity", "price", "status", "source"]
FILLED, CANCELLED = "filled", "cancelled"
EXECUTION_STATUSES = (FILLED, CANCELLED)
SOURCE_FILE, SOURCE_OPERATOR, SOURCE_POSITIONS, SOURCE_EXPIRY = "file", "operator", "positions", "expiry"
# How an approval's wait ended: the lifecycle's moves out of ``approved`` (rebalance_core.lifecycle:
# execute -> executed, expire -> expired); "cancelled" is an execute whose every order the desk
# cancelled (the proposal is done, nothing was traded).
OUTCOME_EXECUTED = lifecycle.transition(lifecycle.APPROVED, lifecycle.EXECUTE).target
OUTCOME_EXPIRED = lifecycle.transition(lifecycle.APPROVED, lifecycle.EXPIRE).target
OUTCOME_CANCELLED = "cancelled"

# An approval never executed stops blocking its fund after this many business days after the
# proposal's date (funds.csv ``execution_expiry_days``): a desk executes approved orders the
# same or the next day; a week covers a backlog or a holiday, and after a week the approved
# trades were sized on stale prices, so a fresh proposal is the better one to review.
DEFAULT_EXECUTION_EXPIRY_DAYS = 5
# A filled quantity within this fraction of the order counts as the order filled; positions
# within it (of the trade's quantity) of "before ± trade" count as the trade done.
FILL_TOLERANCE = 1e-6
POSITION_TOLERANCE = 0.01
_ABS_TOLERANCE = 1e-6
_WEIGHT_DECIMALS = 9   # weights equal to 1e-9 (schema.WEIGHT_EPS) are the same target


@dataclass(frozen=True)
class StateFacts:
    """What tonight knows that moves a fund's state."""

    funds: pd.DataFrame                       # funds in force: fund_id, calendar, execution_expiry_days
    targets: pd.DataFrame                     # tonight's targets in force: fund_id, security_id, target_weight
    summary: pd.DataFrame                     # tonight's drift judgement: fund_id, nav, breached
    positions: pd.DataFrame | None = None     # tonight's book: fund_id, security_id, quantity
    approved: pd.DataFrame | None = None      # APPROVED_COLUMNS
    executions: pd.DataFrame | None = None    # EXECUTION_COLUMNS, every date up to tonight's
    validation_blocked: pd.Index | None = None  # funds whose facts tonight validation does not trust
    index_event: pd.Index | None = None       # funds trading an index event tonight (its own trigger)


@dataclass(frozen=True)
class StateOutcome:
    state: pd.DataFrame       # FUND_STATE_COLUMNS, one row per fund in facts.funds
    blocked: pd.DataFrame     # fund_id, blocked_reason: funds awaiting the execution of an approval
    model_change: pd.Index    # funds with a pending model change (trigger model_change tonight)
    done_by_positions: pd.DataFrame  # EXECUTION_COLUMNS: orders tonight's positions show done


def empty_state() -> pd.DataFrame:
    return _typed(pd.DataFrame({c: pd.Series(dtype="object") for c in FUND_STATE_COLUMNS}))


def targets_keys(targets: pd.DataFrame) -> pd.Series:
    """A stable key per fund (index fund_id) of its targets: a hash of its (security_id,
    weight) rows, order-independent, zero weights left out. Equal targets, equal keys."""
    rows = targets[["fund_id", "security_id", "target_weight"]]
    weight = pd.to_numeric(rows["target_weight"], errors="coerce").astype("float64").fillna(0.0)
    rows = rows[weight.abs().round(_WEIGHT_DECIMALS) > 0]
    weight = weight[rows.index]
    if rows.empty:
        return pd.Series(dtype=object, name="targets_key").rename_axis("fund_id")
    scaled = np.round(weight.to_numpy() * 10 ** _WEIGHT_DECIMALS).astype("int64")
    row_hash = pd.util.hash_pandas_object(
        pd.DataFrame({"s": rows["security_id"].astype(str).to_numpy(), "w": scaled}), index=False).to_numpy()
    codes, funds = pd.factorize(rows["fund_id"], sort=True)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    # A sum of row hashes (wrapping at 2**64) does not depend on the rows' order.
    total = np.add.reduceat(row_hash[order], starts)
    count = np.diff(np.r_[starts, len(order)])
    keys = pd.Series(total).map("{:016x}".format).to_numpy() + "-" + count.astype(str)
    return pd.Series(keys, index=pd.Index(np.asarray(funds, dtype=object), name="fund_id"), name="targets_key")


def seed_state(as_of: dt.date, targets: pd.DataFrame) -> pd.DataFrame:
    """A state holding only the targets in force on ``as_of`` (e.g. a replay's day before its
    first): the next night compares its targets with them, nothing else is carried."""
    keys = targets_keys(targets)
    state = pd.DataFrame({"fund_id": keys.index.to_numpy(), "targets_key": keys.to_numpy()})
    return _typed(state.assign(as_of_date=as_of).reindex(columns=FUND_STATE_COLUMNS))


def expiry_dates(start: pd.Series, days: pd.Series, calendar: pd.Series) -> pd.Series:
    """The ``days``-th business day after each ``start`` on its calendar (per calendar, not per fund)."""
    out = pd.Series(pd.NaT, index=start.index, dtype="datetime64[ns]")
    start = pd.to_datetime(start)
    for name in calendar.dropna().unique():
        rows = (calendar == name) & start.notna()
        if not rows.any():
            continue
        out[rows] = sessions_after(start[rows].to_numpy(), days[rows].to_numpy(dtype="int64"), name)
    return out


def next_fund_state(as_of: dt.date, previous: pd.DataFrame | None, facts: StateFacts) -> StateOutcome:
    """Tonight's state of every fund of ``facts.funds`` from its previous state (None, or no
    row: a fund's first night: nothing to compare, nothing awaited)."""
    funds = facts.funds.drop_duplicates("fund_id")
    ids = pd.Index(funds["fund_id"].to_numpy(), name="fund_id")
    prev = (previous if previous is not None and len(previous) else empty_state())
    prev = _typed(prev).drop_duplicates("fund_id", keep="last").set_index("fund_id").reindex(ids)
    untrusted = ids.isin(facts.validation_blocked if facts.validation_blocked is not None else [])
    index_event = ids.isin(facts.index_event if facts.index_event is not None else [])
    day = pd.Timestamp(as_of)

    # --- targets in force and a pending model change
    key_tonight = targets_keys(facts.targets).reindex(ids)
    key = key_tonight.where(~untrusted, prev["targets_key"])
    changed = prev["targets_key"].notna() & key.notna() & (key != prev["targets_key"]) & ~untrusted & ~index_event
    since = prev["model_change_since"].where(~changed, day)

    # --- the approval each fund awaits
    closed = prev[["closed_proposal_id", "closed_outcome", "closed_on", "closed_by"]].copy()
    awaiting = _open_approvals(facts.approved, prev)
    awaiting = awaiting[awaiting["fund_id"].isin(ids)]
    # One awaited approval per fund (its latest): the others of the fund are not read.
    first = awaiting.drop_duplicates("fund_id")["proposal_id"]
    awaiting = awaiting[awaiting["proposal_id"].isin(first)]
    done = _done_by_executions(awaiting, facts.executions)
    by_positions = _done_by_positions(awaiting, facts.positions)
    proposals = awaiting.drop_duplicates("proposal_id").set_index("fund_id")
    calendars = _fund_column(funds, "calendar", DEFAULT_CALENDAR).reindex(proposals.index)
    days = _expiry_days(funds).reindex(proposals.index)
    expires = expiry_dates(proposals["proposal_date"], days, calendars)
    exec_done = proposals["proposal_id"].map(done["done"]).fillna(False).astype(bool)
    pos_done = proposals["proposal_id"].isin(by_positions["proposal_id"].unique()) & ~exec_done
    finished = exec_done | pos_done
    expired = ~finished & (expires <= day)
    outcome = pd.Series(None, index=proposals.index, dtype=object)
    outcome[exec_done] = np.where(proposals.loc[exec_done, "proposal_id"].map(done["any_filled"]).fillna(False),
                                  OUTCOME_EXECUTED, OUTCOME_CANCELLED)
    outcome[pos_done] = OUTCOME_EXECUTED
    outcome[expired] = OUTCOME_EXPIRED
    source = pd.Series(None, index=proposals.index, dtype=object)
    source[exec_done] = proposals.loc[exec_done, "proposal_id"].map(done["source"])
    source[pos_done] = SOURCE_POSITIONS
    source[expired] = SOURCE_EXPIRY
    ended = outcome.notna()
    ended_ids = ended[ended].index
    closed.loc[ended_ids, "closed_proposal_id"] = proposals.loc[ended_ids, "proposal_id"].to_numpy()
    closed.loc[ended_ids, "closed_outcome"] = outcome[ended].to_numpy()
    closed.loc[ended_ids, "closed_on"] = day
    closed.loc[ended_ids, "closed_by"] = source[ended].to_numpy()
    still = proposals[~ended]

    # A pending change ends when a proposal of its date or later was executed in full (no
    # order cancelled), or when tonight's holdings are within bands of the new targets.
    fully = (exec_done & proposals["proposal_id"].map(done["none_cancelled"]).fillna(False).astype(bool)) | pos_done
    executed_since = pd.Series(False, index=ids)
    hit = fully[fully].index
    executed_since[hit] = (pd.to_datetime(proposals.loc[hit, "proposal_date"]) >= since.reindex(hit)).to_numpy()
    summary = facts.summary.drop_duplicates("fund_id").set_index("fund_id").reindex(ids)
    in_band = summary["nav"].notna() & ~summary["breached"].fillna(True).astype(bool)
    pending_ends = executed_since | (in_band & ~changed & ~untrusted)
    since = since.where(~pending_ends.to_numpy(), pd.NaT)

    state = pd.DataFrame({"fund_id": ids, "as_of_date": day, "targets_key": key.to_numpy(),
                          "model_change_since": since.to_numpy()}, index=ids)
    state["awaiting_proposal_id"] = still["proposal_id"].reindex(ids)
    state["awaiting_proposal_date"] = pd.to_datetime(still["proposal_date"]).reindex(ids)
    state["awaiting_approved_at"] = still["approved_at"].reindex(ids) if "approved_at" in still else None
    state["awaiting_expires_on"] = expires.reindex(still.index).reindex(ids)
    state = state.join(closed)
    state["compliance_failing"] = None
    state["note"] = _notes(changed, ended, proposals, outcome, source, days, ids)
    state = _typed(state.reset_index(drop=True).reindex(columns=FUND_STATE_COLUMNS))

    waiting = state[state["awaiting_proposal_id"].notna()]
    reason = ("awaiting execution: approved proposal " + waiting["awaiting_proposal_id"].astype(str) + " ("
              + waiting["awaiting_proposal_date"].dt.strftime("%Y-%m-%d") + ") is not reported done "
              "(executions.csv, a later date's positions, or `rebalance executed "
              + waiting["awaiting_proposal_id"].astype(str) + "`); no new proposal until it is, or until "
              "the approval expires on " + waiting["awaiting_expires_on"].dt.strftime("%Y-%m-%d"))
    blocked = pd.DataFrame({"fund_id": waiting["fund_id"].to_numpy(), "blocked_reason": reason.to_numpy()})
    model_change = pd.Index(state.loc[state["model_change_since"].notna(), "fund_id"], name="fund_id")
    done_rows = by_positions[by_positions["proposal_id"].isin(proposals.loc[pos_done[pos_done].index,
                                                                            "proposal_id"])]
    return StateOutcome(state, blocked, model_change, done_rows.reindex(columns=EXECUTION_COLUMNS))


def with_compliance(state: pd.DataFrame, compliance: pd.DataFrame | None) -> pd.DataFrame:
    """``compliance_failing``: the rules each fund's holdings fail tonight (the compliance
    rows without a proposal), comma-joined; None when it fails none."""
    if compliance is None or compliance.empty or "proposal_id" not in compliance:
        return state.assign(compliance_failing=None)
    holdings = compliance[compliance["proposal_id"].isna() & ~compliance["passed"].astype(bool)]
    failing = holdings.sort_values("rule").groupby("fund_id")["rule"].agg(",".join)
    return state.assign(compliance_failing=state["fund_id"].map(failing).astype(object))


# --------------------------------------------------------------------- helpers
def _open_approvals(approved: pd.DataFrame | None, prev: pd.DataFrame) -> pd.DataFrame:
    """The approved proposals' orders still awaited: the one each fund's state closed is not."""
    if approved is None or approved.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in APPROVED_COLUMNS})
    approved = approved.reindex(columns=APPROVED_COLUMNS)
    closed = approved["fund_id"].map(prev["closed_proposal_id"].dropna())
    return approved[(approved["proposal_id"] != closed).to_numpy()].reset_index(drop=True)


def _done_by_executions(orders: pd.DataFrame, executions: pd.DataFrame | None) -> pd.DataFrame:
    """Per proposal: done (every order filled, or cancelled, cumulatively), any_filled,
    none_cancelled, source (``operator`` when an operator's word is among them, else ``file``)."""
    columns = ["done", "any_filled", "none_cancelled", "source"]
    if orders.empty or executions is None or executions.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    ex = executions[executions["proposal_id"].isin(orders["proposal_id"])]
    key = ["proposal_id", "security_id", "side"]
    quantity = pd.to_numeric(ex["quantity"], errors="coerce").fillna(0.0)
    filled = quantity.where(ex["status"].fillna(FILLED) == FILLED, 0.0).groupby([ex[k] for k in key]).sum()
    cancelled = (ex["status"] == CANCELLED).groupby([ex[k] for k in key]).any()
    real = orders[orders["security_id"].notna()]
    idx = pd.MultiIndex.from_frame(real[key])
    got = filled.reindex(idx).fillna(0.0).to_numpy()
    cut = cancelled.reindex(idx).fillna(False).to_numpy(dtype=bool)
    need = pd.to_numeric(real["quantity"], errors="coerce").fillna(0.0).to_numpy()
    order_done = cut | (got >= need * (1 - FILL_TOLERANCE) - _ABS_TOLERANCE)
    per = pd.DataFrame({"proposal_id": real["proposal_id"].to_numpy(), "done": order_done, "filled": got > 0,
                        "cancelled": cut}).groupby("proposal_id").agg(done=("done", "all"), any_filled=("filled", "any"),
                                                                      any_cancelled=("cancelled", "any"))
    # An approved proposal without trades is done as soon as anybody reports on it.
    empty = orders.loc[orders["security_id"].isna(), "proposal_id"]
    reported = empty[empty.isin(ex["proposal_id"])]
    if len(reported):
        per = pd.concat([per, pd.DataFrame({"done": True, "any_filled": False, "any_cancelled": False},
                                           index=pd.Index(reported.unique(), name="proposal_id"))])
    per["none_cancelled"] = ~per["any_cancelled"]
    operator = ex.loc[ex["source"] == SOURCE_OPERATOR, "proposal_id"].unique()
    per["source"] = np.where(per.index.isin(operator), SOURCE_OPERATOR, SOURCE_FILE)
    return per[columns]


def _done_by_positions(orders: pd.DataFrame, positions: pd.DataFrame | None) -> pd.DataFrame:
    """The orders of the proposals whose every traded security's position tonight is its
    quantity before ± the trade (within POSITION_TOLERANCE of the trade): EXECUTION_COLUMNS."""
    real = orders[orders["security_id"].notna()]
    if real.empty or positions is None:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in EXECUTION_COLUMNS})
    quantity = pd.to_numeric(real["quantity"], errors="coerce").fillna(0.0)
    signed = quantity.where(real["side"].str.upper() == "BUY", -quantity)
    key = ["fund_id", "proposal_id", "security_id"]
    per = real.assign(signed=signed, traded=quantity,
                      before=pd.to_numeric(real["quantity_before"], errors="coerce").fillna(0.0)).groupby(
        key, as_index=False).agg(signed=("signed", "sum"), traded=("traded", "sum"), before=("before", "first"))
    held = positions.groupby(["fund_id", "security_id"])["quantity"].sum()
    now = held.reindex(pd.MultiIndex.from_frame(per[["fund_id", "security_id"]])).fillna(0.0).to_numpy()
    expected = per["before"].to_numpy() + per["signed"].to_numpy()
    ok = np.abs(now - expected) <= np.maximum(POSITION_TOLERANCE * per["traded"].to_numpy(), _ABS_TOLERANCE)
    # A trade that changes nothing proves nothing: a proposal counts only if some trade moved.
    moved = np.abs(per["signed"].to_numpy()) > _ABS_TOLERANCE
    judged = pd.DataFrame({"proposal_id": per["proposal_id"], "ok": ok, "moved": moved}).groupby("proposal_id").agg(
        ok=("ok", "all"), moved=("moved", "any"))
    done_ids = judged.index[judged["ok"] & judged["moved"]]
    rows = real[real["proposal_id"].isin(done_ids)]
    return pd.DataFrame({"fund_id": rows["fund_id"], "proposal_id": rows["proposal_id"],
                         "security_id": rows["security_id"], "side": rows["side"], "quantity": rows["quantity"],
                         "price": np.nan, "status": FILLED, "source": SOURCE_POSITIONS}).reset_index(drop=True)


def _notes(changed, ended, proposals, outcome, source, days, ids) -> pd.Series:
    note = pd.Series(None, index=ids, dtype=object)
    note[changed.to_numpy()] = "targets changed: model change pending until a proposal to them is executed or " \
                               "the holdings are within bands of them"
    if ended.any():
        rows = proposals[ended]
        text = ("approved proposal " + rows["proposal_id"].astype(str) + " ("
                + pd.to_datetime(rows["proposal_date"]).dt.strftime("%Y-%m-%d") + ") "
                + outcome[ended].map({OUTCOME_EXECUTED: "executed", OUTCOME_CANCELLED: "cancelled",
                                      OUTCOME_EXPIRED: "expired unexecuted"}).astype(str))
        how = source[ended].map({SOURCE_FILE: " (executions.csv)", SOURCE_OPERATOR: " (operator's word)",
                                 SOURCE_POSITIONS: " (the positions show its trades done)"}).fillna("")
        expired = outcome[ended] == OUTCOME_EXPIRED
        how[expired] = (" after " + days[ended][expired].astype("int64").astype(str)
                        + " business days (execution_expiry_days) without executions.csv, positions or an "
                          "operator's word showing its orders done; the fund proposes again")
        text = text + how
        note[text.index] = [t if pd.isna(n) else f"{n}; {t}" for n, t in zip(note[text.index], text, strict=True)]
    return note


def _fund_column(funds: pd.DataFrame, column: str, default) -> pd.Series:
    values = funds[column] if column in funds else pd.Series(None, index=funds.index, dtype=object)
    values = values.where(values.notna() & (values.astype(str).str.strip() != ""), default)
    return pd.Series(values.to_numpy(), index=funds["fund_id"].to_numpy())


def _expiry_days(funds: pd.DataFrame) -> pd.Series:
    """``execution_expiry_days`` per fund (index fund_id); empty, unreadable or < 1: the default."""
    raw = funds["execution_expiry_days"] if "execution_expiry_days" in funds else pd.Series(np.nan, index=funds.index)
    days = pd.to_numeric(raw, errors="coerce")
    days = days.where(days >= 1, DEFAULT_EXECUTION_EXPIRY_DAYS).round().astype("int64")
    return pd.Series(days.to_numpy(), index=funds["fund_id"].to_numpy())


def _typed(state: pd.DataFrame) -> pd.DataFrame:
    state = state.reindex(columns=FUND_STATE_COLUMNS).copy()
    for column in DATE_COLUMNS:
        state[column] = pd.to_datetime(state[column], errors="coerce")
    state["awaiting_approved_at"] = pd.to_datetime(state["awaiting_approved_at"], errors="coerce", utc=True)
    for column in FUND_STATE_COLUMNS:
        if column not in DATE_COLUMNS and column != "awaiting_approved_at":
            state[column] = state[column].astype(object).where(state[column].notna(), None)
    return state
