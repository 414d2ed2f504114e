"""One night's decision for a set of funds: the single function every caller uses.

``decide_night(as_of, inputs)`` takes typed frames (the date's prices, positions, cash,
reference data in force, validation outcomes as blocked funds, and facts from the approved
history) and returns everything the night decides: drift rows, the fund summary with each
fund's status, proposals, trades and the tax lots their sells close. It reads and writes
nothing. The nightly run (whole, or one shard of funds at a time), the Airflow shard tasks
and ``rebalance simulate`` all call it, so a what-if replays exactly the nightly rules.

Rules decided here (and nowhere else):
- a fund blocked by validation, whose NAV cannot be computed, or whose approved orders are
  not in the market by this date's close (``awaiting execution``) gets no proposal;
- a security without its own half spread takes its asset class's;
- a fund with a ``model_id`` takes the targets of that model's version in force on the date
  (``rebalance_core.models``); a fund whose targets differ from those of its previous
  business date (``previous_targets``) rebalances to them whatever its policy (trigger and
  trade reason ``model_change``);
- an ``index_tracking`` fund trades into a model version announced ahead at the close of
  the last trading day before it is effective (trigger and reason ``index_event``), and
  does not trade it again on the day it comes into force (``rebalance_core.index_events``);
- ETF primary market (``rebalance_core.baskets``): each fund with a creation unit gets its
  creation and redemption baskets; the day's cash creations and redemptions are flows, the
  in-kind ones settle into positions, cash and lots before drift (lowest-cost lots out);
- ``band_level = asset_class``: a fund's bands are judged on its classes' total weights
  (``fund_class_drift``, written for every fund) and its rebalance trades classes;
- status: ``blocked`` (with the reason), ``proposed`` (with the proposal id) or ``in_band``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd

from rebalance_core.baskets import BASKET_COLUMNS, IN_KIND_LOT_COLUMNS, PrimaryMarket, settle_primary_market
from rebalance_core.calendar import session_close
from rebalance_core.drift import (
    CLASS_DRIFT_COLUMNS,
    apply_class_bands,
    compute_class_drift,
    compute_drift,
    summarize_funds,
)
from rebalance_core.index_events import night_targets
from rebalance_core.models import changed_targets, fund_models
from rebalance_core.proposals import apply_presets, propose, resolve_flow_triggers, resolve_triggers
from rebalance_core.schema import (
    STATUS_BLOCKED,
    STATUS_IN_BAND,
    STATUS_PROPOSED,
    TRIGGER_INDEX_EVENT,
    TRIGGER_MODEL_CHANGE,
)
from rebalance_core.tax_lots import LOT_COLUMNS, realize_gains, summarize_gains

BLOCKED_COLUMNS = ["fund_id", "blocked_reason"]
AWAITING_COLUMNS = ["fund_id", "proposal_id", "proposal_date", "exported_at"]
UNVALUED_REASON = ("NAV cannot be computed (a holding has no usable price or fx rate, or the fund is worth "
                   "nothing)")


@dataclass(frozen=True)
class NightInputs:
    """What one night knows, for the funds it decides (a whole night or one shard).

    Fund-keyed frames (positions, cash, targets, funds, flows, tax_lots, blocked,
    recent_loss_sales, approved_unexecuted, previous_targets) may hold only the shard's
    funds; security-keyed ones (prices, securities, asset_classes, fx_rates) and the model
    history are whole.
    """

    prices: pd.DataFrame                          # security_id, close_price, currency
    positions: pd.DataFrame                       # fund_id, security_id, quantity
    cash: pd.DataFrame                            # fund_id, currency, amount (a fund without a row has 0)
    funds: pd.DataFrame                           # funds.csv in force
    targets: pd.DataFrame                         # fund_id, security_id, target_weight (CASH row optional)
    securities: pd.DataFrame | None = None        # securities.csv in force
    asset_classes: pd.DataFrame | None = None     # asset_classes.csv in force
    flows: pd.DataFrame | None = None             # fund_id, amount (base currency)
    fx_rates: pd.DataFrame | None = None          # currency, base_currency, rate
    tax_lots: pd.DataFrame | None = None          # open lots
    blocked: pd.DataFrame | None = None           # fund_id, blocked_reason: what validation found
    recent_loss_sales: pd.DataFrame | None = None  # fund_id, security_id: approved loss sales, last 30 days
    approved_unexecuted: pd.DataFrame | None = None  # AWAITING_COLUMNS: latest approved earlier proposal per fund
    # Model versions known tonight (rebalance_core.models.MODEL_HISTORY_COLUMNS): model_id,
    # security_id, target_weight, valid_from (the folder's date), effective_date.
    model_targets: pd.DataFrame | None = None
    # fund_id, security_id, target_weight: each fund's targets in force on its previous
    # business date (resolved as tonight's are); a fund without rows has nothing to compare.
    previous_targets: pd.DataFrame | None = None
    # ETF primary market: creations.csv (fund_id, units, settlement) and fund_shares.csv
    # (fund_id, shares_outstanding); None: no orders, no baskets.
    creations: pd.DataFrame | None = None
    fund_shares: pd.DataFrame | None = None

    def for_funds(self, fund_ids) -> NightInputs:
        """The same night restricted to ``fund_ids`` (security-keyed frames stay whole)."""
        keep = pd.Index(fund_ids)
        changes = {}
        for field in fields(self):
            frame = getattr(self, field.name)
            if isinstance(frame, pd.DataFrame) and "fund_id" in frame.columns:
                changes[field.name] = frame[frame["fund_id"].isin(keep)]
        return replace(self, **changes)


@dataclass(frozen=True)
class NightDecision:
    drift: pd.DataFrame        # rebalance_core.drift.DRIFT_COLUMNS
    class_drift: pd.DataFrame  # rebalance_core.drift.CLASS_DRIFT_COLUMNS, every fund
    targets: pd.DataFrame      # each fund's targets in force (own or its model's), with model_id
    summary: pd.DataFrame      # one row per fund: nav, breaches, trigger, status, blocked_reason, proposal_id
    proposals: pd.DataFrame    # one row per proposed fund
    trades: pd.DataFrame       # one row per trade
    lots: pd.DataFrame         # tax lots each sell closes (rebalance_core.tax_lots.LOT_COLUMNS)
    blocked: pd.DataFrame      # fund_id, blocked_reason: every fund that got no proposal for a reason
    # rebalance_core.baskets.BASKET_COLUMNS / IN_KIND_LOT_COLUMNS: the PCF, and lots moved in kind
    baskets: pd.DataFrame | None = None
    in_kind_lots: pd.DataFrame | None = None
    # The book the decision started from: the files' once the day's in-kind orders settled,
    # and the flows with the cash orders (rebalance_core.baskets.PrimaryMarket).
    settled: PrimaryMarket | None = None


def decide_night(as_of: dt.date, inputs: NightInputs) -> NightDecision:
    """Drift, triggers, proposals and statuses of every fund in ``inputs.funds``."""
    funds = apply_presets(inputs.funds.drop_duplicates("fund_id"))
    securities = with_class_spreads(inputs.securities, inputs.asset_classes)
    # An index-tracking fund on its eve takes the announced version (index_events).
    targets, index_event = night_targets(as_of, funds, inputs.targets, inputs.model_targets)
    validation_blocked = inputs.blocked["fund_id"] if inputs.blocked is not None and len(inputs.blocked) else ()
    # The files hold the close before the day's AP orders settle in kind: settle them first.
    market = settle_primary_market(as_of, funds, targets, inputs.positions, inputs.prices, inputs.cash,
                                   inputs.fx_rates, securities, inputs.tax_lots, inputs.flows, inputs.creations,
                                   inputs.fund_shares, blocked_ids=validation_blocked)
    flows, tax_lots = market.flows, market.tax_lots
    drift = compute_drift(as_of, funds, targets, market.positions, inputs.prices, market.cash,
                          inputs.fx_rates, securities=securities, asset_class_bands=inputs.asset_classes)
    summary = summarize_funds(drift)
    class_drift = compute_class_drift(as_of, drift, funds, securities, inputs.asset_classes)
    drift, summary = apply_class_bands(drift, summary, class_drift, funds, securities)

    blocked = _blocked_by_validation(inputs.blocked)
    # A fund whose NAV cannot be computed cannot be sized, whatever validation said.
    unvalued = summary.loc[summary["nav"].isna() & ~summary["fund_id"].isin(blocked["fund_id"]), "fund_id"]
    blocked = _add_blocked(blocked, unvalued, UNVALUED_REASON)
    waiting = awaiting_execution(as_of, inputs.approved_unexecuted)
    waiting = waiting[waiting["fund_id"].isin(summary["fund_id"]) & ~waiting["fund_id"].isin(blocked["fund_id"])]
    blocked = pd.concat([blocked, waiting], ignore_index=True) if len(waiting) else blocked

    triggers = resolve_triggers(as_of, funds, summary)
    triggers = resolve_flow_triggers(drift, summary, funds, flows, triggers)
    changed = changed_targets(targets, inputs.previous_targets)
    triggers = triggers.where(~triggers.index.isin(changed), TRIGGER_MODEL_CHANGE)
    triggers = triggers.where(~triggers.index.isin(index_event), TRIGGER_INDEX_EVENT)
    proposals, trades = propose(as_of, drift, summary, funds, triggers, securities=securities, blocked=blocked,
                                flows=flows, class_drift=class_drift)
    fx_rate = None
    if len(trades):
        fx_rate = trades[["fund_id", "security_id"]].merge(
            drift[["fund_id", "security_id", "fx_rate"]], on=["fund_id", "security_id"], how="left"
        )["fx_rate"].set_axis(trades.index)
    trades, lots = realize_gains(as_of, trades, tax_lots, funds, fx_rate=fx_rate,
                                 recent_loss_sales=inputs.recent_loss_sales if tax_lots is not None else None)
    if len(proposals):
        proposals = summarize_gains(proposals, trades)
    else:
        proposals = proposals.assign(est_realized_gain_short=np.nan, est_realized_gain_long=np.nan,
                                     wash_sale_trades=0)
    if lots.empty:
        lots = pd.DataFrame({c: pd.Series(dtype="object") for c in LOT_COLUMNS})
    summary = summary.assign(flow=summary["fund_id"].map(flows.groupby("fund_id")["amount"].sum())
                             if flows is not None and len(flows) else np.nan)
    # The unrealized gain that left the fund in kind tonight (no gain is realized on it).
    summary["in_kind_unrealized_gain"] = summary["fund_id"].map(market.in_kind_gain).astype("float64")
    proposals = proposals.assign(in_kind_unrealized_gain=proposals["fund_id"].map(market.in_kind_gain).astype(
        "float64") if len(proposals) else pd.Series(dtype="float64"))
    fund_summary = _fund_summary(as_of, funds, summary, triggers, blocked, proposals)
    fund_summary["model_id"] = fund_summary["fund_id"].map(fund_models(funds))
    if class_drift.empty:
        class_drift = pd.DataFrame({c: pd.Series(dtype="object") for c in CLASS_DRIFT_COLUMNS})
    baskets = market.baskets if len(market.baskets) else pd.DataFrame(
        {c: pd.Series(dtype="object") for c in BASKET_COLUMNS})
    in_kind_lots = market.in_kind_lots if len(market.in_kind_lots) else pd.DataFrame(
        {c: pd.Series(dtype="object") for c in IN_KIND_LOT_COLUMNS})
    return NightDecision(drift, class_drift, targets, fund_summary, proposals, trades, lots, blocked, baskets,
                         in_kind_lots, market)


def with_class_spreads(securities: pd.DataFrame | None, asset_classes: pd.DataFrame | None) -> pd.DataFrame | None:
    """A security without its own half spread takes its asset class's."""
    if securities is None or securities.empty:
        return None
    if asset_classes is None or asset_classes.empty or "half_spread_bps" not in asset_classes:
        return securities
    by_class = asset_classes.drop_duplicates("asset_class").set_index("asset_class")["half_spread_bps"]
    own = (securities["half_spread_bps"] if "half_spread_bps" in securities
           else pd.Series(np.nan, index=securities.index))
    return securities.assign(half_spread_bps=pd.to_numeric(own, errors="coerce").astype("float64").fillna(
        securities["asset_class"].map(by_class).astype("float64")))


def awaiting_execution(as_of: dt.date, approved: pd.DataFrame | None) -> pd.DataFrame:
    """Funds with an approved proposal of an earlier date whose orders were not exported
    before this date's close: tonight's positions cannot reflect them, so a new proposal
    would trade the same drift again. ``approved`` has the latest such proposal per fund."""
    if approved is None or approved.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in BLOCKED_COLUMNS})
    approved = approved[pd.to_datetime(approved["proposal_date"]).dt.date < as_of]
    exported_at = pd.to_datetime(approved["exported_at"], utc=True)
    close = session_close(as_of)
    late = exported_at.isna() | (exported_at >= close)
    rows = approved[late.to_numpy()]
    exported = pd.to_datetime(rows["exported_at"], utc=True)
    reason = ("awaiting execution: approved proposal " + rows["proposal_id"].astype(str) + " ("
              + pd.to_datetime(rows["proposal_date"]).dt.strftime("%Y-%m-%d") + ") "
              + np.where(exported.isna(), "has not been exported", "was exported after this date's close")
              + "; no new proposal until the positions reflect its orders")
    return pd.DataFrame({"fund_id": rows["fund_id"].to_numpy(), "blocked_reason": reason.to_numpy()})


def _blocked_by_validation(blocked: pd.DataFrame | None) -> pd.DataFrame:
    if blocked is None or blocked.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in BLOCKED_COLUMNS})
    return blocked[BLOCKED_COLUMNS].drop_duplicates("fund_id").reset_index(drop=True)


def _add_blocked(blocked: pd.DataFrame, fund_ids: pd.Series, reason: str) -> pd.DataFrame:
    if fund_ids.empty:
        return blocked
    extra = pd.DataFrame({"fund_id": fund_ids.to_numpy(), "blocked_reason": reason})
    return pd.concat([blocked, extra], ignore_index=True)


def _fund_summary(as_of, funds, summary, triggers, blocked, proposals) -> pd.DataFrame:
    out = summary.merge(funds[["fund_id", "name", "base_currency", "policy"]], on="fund_id", how="left")
    # Funds that appear only in faults (positions of a fund not in funds.csv) are listed too.
    unknown = blocked.loc[~blocked["fund_id"].isin(out["fund_id"]), ["fund_id"]]
    out = pd.concat([out, unknown], ignore_index=True) if len(unknown) else out
    out = out.merge(blocked, on="fund_id", how="left")
    out["trigger"] = out["fund_id"].map(triggers)
    out["proposal_id"] = out["fund_id"].map(proposals.set_index("fund_id")["proposal_id"]) if len(proposals) else None
    is_blocked = out["blocked_reason"].notna()
    out.loc[is_blocked, "trigger"] = None
    out["status"] = np.where(is_blocked, STATUS_BLOCKED,
                             np.where(out["proposal_id"].notna(), STATUS_PROPOSED, STATUS_IN_BAND))
    out["breached"] = out["breached"].fillna(False).astype(bool)
    out["breach_count"] = out["breach_count"].fillna(0).astype("int64")
    out["as_of_date"] = as_of
    return out.sort_values("fund_id", ignore_index=True)
