"""The typed inputs and output of ``decide_night`` (``rebalance_core.night``)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import pandas as pd

from rebalance_core.baskets import PrimaryMarket


@dataclass(frozen=True)
class NightInputs:
    """What one night knows, for the funds it decides (a whole night or one shard).

    Fund-keyed frames (positions, cash, targets, funds, flows, tax_lots, blocked,
    recent_loss_sales, previous_state, approved, executions) may hold only the shard's
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
    # Model versions known tonight (rebalance_core.models.MODEL_HISTORY_COLUMNS): model_id,
    # security_id, target_weight, valid_from (the folder's date), effective_date.
    model_targets: pd.DataFrame | None = None
    # The funds' state of their previous night (rebalance_core.fund_state.FUND_STATE_COLUMNS;
    # a fund without a row: its first night), each fund's latest approved proposal of an
    # earlier date with its orders (fund_state.APPROVED_COLUMNS) and what executions of it
    # were reported, tonight's included (fund_state.EXECUTION_COLUMNS).
    previous_state: pd.DataFrame | None = None
    approved: pd.DataFrame | None = None
    executions: pd.DataFrame | None = None
    restrictions: pd.DataFrame | None = None      # restrictions.csv in force: fund_id, security_id, rule, substitute_id
    substitutes: pd.DataFrame | None = None       # substitutes.csv in force: security_id, substitute_id, rank
    recent_buys: pd.DataFrame | None = None       # fund_id, security_id: approved buys, last 30 days
    # fund_id, security_id, substitute_id, harvested_on: approved harvests not swapped back.
    open_harvests: pd.DataFrame | None = None
    # ETF operations (rebalance_core.tracking): tonight's index levels (model_id, level) and
    # shares outstanding (fund_id, shares_outstanding); the funds' earlier fund_tracking rows
    # (tracking.HISTORY_COLUMNS); earlier closes (as_of_date, security_id, close_price) of
    # the last 60 business dates, for the ex-ante tracking error.
    index_levels: pd.DataFrame | None = None
    fund_shares: pd.DataFrame | None = None
    tracking_history: pd.DataFrame | None = None
    price_history: pd.DataFrame | None = None
    # ETF primary market: creations.csv (fund_id, units, settlement); None: no orders. With
    # fund_shares above, the funds with a creation_unit get their baskets.
    creations: pd.DataFrame | None = None
    # Rejections remembered by fund and trigger (rebalance_core.lifecycle.DECISION_COLUMNS):
    # per (fund, trigger), its latest decided proposal when that was a rejection. Tonight's
    # proposal of the same fund and trigger carries who rejected it, when and the note.
    recent_rejections: pd.DataFrame | None = None

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
    tracking: pd.DataFrame | None = None    # rebalance_core.tracking.TRACKING_COLUMNS
    compliance: pd.DataFrame | None = None  # rebalance_core.compliance.RESULT_COLUMNS
    # rebalance_core.baskets.BASKET_COLUMNS / IN_KIND_LOT_COLUMNS: the PCF, and lots moved in kind
    baskets: pd.DataFrame | None = None
    in_kind_lots: pd.DataFrame | None = None
    # The book the decision started from: the files' once the day's in-kind orders settled,
    # and the flows with the cash orders (rebalance_core.baskets.PrimaryMarket).
    settled: PrimaryMarket | None = None
    # Tonight's state of every fund (fund_state.FUND_STATE_COLUMNS), and the orders of the
    # approvals tonight's positions show done (fund_state.EXECUTION_COLUMNS, source positions).
    fund_state: pd.DataFrame | None = None
    executed_by_positions: pd.DataFrame | None = None
