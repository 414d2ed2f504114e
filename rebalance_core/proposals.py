"""Proposals: from drift and tonight's triggers to sized trades, all funds at once.

The triggers are resolved before (``rebalance_core.triggers``); the sizing pieces live in
``rebalance_core.trade_sizing``, the per-holding rules in ``rebalance_core.trade_rules``.

Order of work for the funds that trigger and are not blocked:

0. cash flows first: a pending subscription is invested in the holdings furthest below
   target, a redemption raised from those furthest above (``cash_flow`` trades); the
   rebalance below starts from where these leave the fund, and a fund triggered only by
   its flow trades nothing else;
1. destination weight per holding: the target (``rebalance_to = target``), or, for the
   holdings that breach, a point between target and band edge (``band``: the edge,
   ``halfway``, ``vanguard``: 1.75 pp, or the fund's ``band_fraction``); a security with
   no target goes to zero; a non-tradable security stays where it is and the tradable
   targets are rescaled to share the rest of the fund (reason ``restriction``). A cash buffer larger
   than the fund's CASH target scales the security targets down to make room for it.
2. quantity = (destination × NAV − market value) / (price × fx), never selling more than
   is held;
3. whole lots unless the fund allows fractions (sells round to the nearest lot, buys down);
4. trades below the fund's minimum notional are dropped;
5. caps: a fund's ``max_turnover`` or ``max_cost_bps`` scales all its trades down;
6. cash check, costs included (commission, half spread, square-root impact): buys are
   scaled down (and re-rounded down to lots) so that cash after trading stays at or above
   the buffer, and never below zero; minimum trade again.

Every step is a column operation or a groupby over all funds; there is no per-fund loop.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rebalance_core.drift import band_levels
from rebalance_core.schema import (
    BAND_LEVEL_ASSET_CLASS,
    CASH,
    REASON_BAND,
    REASON_CALENDAR,
    REASON_CASH_FLOW,
    REASON_RESTRICTION,
    TO_TARGET_TRIGGERS,
    TRIGGER_CALENDAR,
    TRIGGER_THRESHOLD,
    WEIGHT_EPS,
)
from rebalance_core.trade_rules import (  # noqa: F401  (RULE_*: re-exported, the rules' vocabulary)
    RULE_HOLD,
    RULE_WASH_NO_BUY,
    RULE_WASH_NO_SELL,
    apply_rules,
    obey_rules,
    rescale_around_frozen,
    restriction_notes,
    wash_notes,
)
from rebalance_core.trade_sizing import (  # noqa: F401  (apply_presets, QTY_EPS: re-exported)
    COST_COLUMNS,
    QTY_EPS,
    apply_presets,
    attach_security_terms,
    class_trades,
    destination_weight,
    drop_small,
    flow_trades,
    round_to_lots,
    round_toward_zero,
    trade_costs,
)
from rebalance_core.triggers import flow_per_fund

TRADE_COLUMNS = [
    "proposal_id", "fund_id", "security_id", "side", "quantity", "price", "currency", "notional",
    "weight_before", "weight_after", "target_weight", "est_cost", "est_realized_gain", "reason", "harvest_of",
]
PROPOSAL_COLUMNS = [
    "proposal_id", "as_of_date", "fund_id", "trigger", "nav", "turnover", "est_cost",
    "est_realized_gain", "trade_count", "cash_before", "cash_after", "flow", "notes", "restriction_note",
]
REASON_TO_TARGET = "to_target"  # a holding inside its band, traded because the fund rebalances to target


def propose(
    as_of: dt.date,
    drift: pd.DataFrame,
    summary: pd.DataFrame,
    funds: pd.DataFrame,
    triggers: pd.Series,
    securities: pd.DataFrame | None = None,
    blocked: pd.DataFrame | None = None,
    flows: pd.DataFrame | None = None,
    class_drift: pd.DataFrame | None = None,
    restrictions: pd.DataFrame | None = None,
    restriction_moves: pd.DataFrame | None = None,
    fixed_trades: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Proposals and their trades for the funds that trigger; (proposals, trades).

    ``model_change`` and ``index_event`` (TO_TARGET_TRIGGERS): every holding of the fund
    goes to its (new) target, whatever its policy. Funds with ``band_level = asset_class`` (``class_drift`` says which classes
    breach) restore their breaching classes, or all classes on a calendar date, and split
    each class's trade over its securities in proportion to their targets.

    ``restrictions`` (fund_id, security_id, rule): restrictions.csv's ``no_buy``,
    ``no_sell`` and ``exclude``, and the rules derived tonight (RULE_WASH_NO_BUY,
    RULE_WASH_NO_SELL, RULE_HOLD). A holding whose target asks for a move its rules forbid
    stays where it is and the fund's other holdings share the rest; no trade ever breaks a
    rule. ``restriction_moves`` (fund_id, security_id): holdings whose target an exclusion
    raised; a fund holding an excluded security sells it and brings those to target.
    ``fixed_trades`` (TRADE_COLUMNS, fund_id, harvest_of): trades decided elsewhere (a
    tax-loss harvest) that join the fund's proposal as they are."""
    policy = _fund_policy(drift, summary, funds, triggers, blocked, flows)
    if policy.empty:
        return _empty(PROPOSAL_COLUMNS), _empty(TRADE_COLUMNS)
    rows = drift.loc[drift["fund_id"].isin(policy.index) & (drift["security_id"] != CASH)]
    rows = attach_security_terms(rows.join(policy, on="fund_id"), securities)
    rows = rescale_around_frozen(apply_rules(rows, restrictions, restriction_moves), rows["fund_id"])
    sized = _trade_values(rows, policy, funds, class_drift, securities)
    qty = _lots_and_minimums(sized)
    qty, policy["capped_by"] = _apply_caps(qty, sized.unit_value, rows, policy)
    qty = _fit_cash(qty, sized.unit_value, rows, policy)
    qty = obey_rules(qty, rows)
    # An excluded holding is sold whole, whatever minimums or caps said (a mandate).
    must_sell = (rows["excluded"] & (rows["quantity"] > 0) & rows["listed_tradable"] & rows["price"].notna()
                 & ~rows["no_sell"] & ~rows["hold"])
    qty = qty.where(~must_sell, -rows["quantity"])
    from_flow_only = (sized.flow_value != 0) & (sized.rebalance_value == 0)
    return _assemble(as_of, rows, qty, sized.unit_value, policy, from_flow_only, fixed_trades)


def _fund_policy(drift, summary, funds, triggers, blocked, flows) -> pd.DataFrame:
    """One row per fund that triggers, is not blocked and has a NAV: its sizing terms, with
    NAV and cash once the pending flow has settled (empty: no fund proposes)."""
    fund_state = summary.set_index("fund_id")[["nav", "cash"]]
    blocked_ids = set(blocked["fund_id"]) if blocked is not None else set()
    active = triggers.dropna()
    active = active[~active.index.isin(blocked_ids) & active.index.isin(fund_state.index[fund_state["nav"].notna()])]
    if active.empty:
        return pd.DataFrame()
    funds = funds if "band_fraction" in funds else funds.assign(band_fraction=np.nan)
    for column in COST_COLUMNS:
        if column not in funds:
            funds = funds.assign(**{column: np.nan})
    policy = funds.set_index("fund_id").loc[active.index, ["rebalance_to", "min_trade_notional", "cash_buffer",
                                                            "allow_fractional", "band_fraction", *COST_COLUMNS]]
    policy["trigger"] = active
    policy = policy.join(fund_state.rename(columns={"nav": "nav_before", "cash": "cash_before"}))
    policy["flow"] = flow_per_fund(flows, policy.index)
    # Sizing works on the fund as it is once the pending flow has settled in cash.
    policy["nav"] = policy["nav_before"] + policy["flow"]
    policy["cash"] = policy["cash_before"] + policy["flow"]
    cash_target = drift.loc[drift["security_id"] == CASH].set_index("fund_id")["target_weight"]
    policy["cash_target"] = cash_target.reindex(policy.index).fillna(0.0)
    policy["cash_buffer"] = policy["cash_buffer"].fillna(0.0)
    # The minimum trade is the greater of a notional and a share of NAV (min_trade_pct_nav).
    policy["min_trade_notional"] = np.maximum(policy["min_trade_notional"].fillna(0.0),
                                              policy["min_trade_pct_nav"].fillna(0.0) * policy["nav_before"])
    policy["allow_fractional"] = policy["allow_fractional"].fillna(False).astype(bool)
    reserve = np.maximum(policy["cash_target"], policy["cash_buffer"])
    policy["reserve"] = reserve
    policy["target_scale"] = np.where(policy["cash_target"] < 1, (1 - reserve) / (1 - policy["cash_target"]), 0.0)
    return policy


@dataclass(frozen=True)
class _Sized:
    """Signed value each holding trades (flow first, then the rebalance from there)."""

    rows: pd.DataFrame
    flow_value: pd.Series
    rebalance_value: pd.Series
    rebalances: pd.Series       # the holding's fund rebalances (not only its flow)
    destination: pd.Series      # the weight it goes to
    unit_value: pd.Series       # price x fx, base currency


def _trade_values(rows: pd.DataFrame, policy: pd.DataFrame, funds: pd.DataFrame, class_drift, securities) -> _Sized:
    fund = rows["fund_id"]
    # 1. Cash flows first: the most underweight holdings absorb a subscription, the most
    #    overweight ones fund a redemption.
    flow_value = flow_trades(rows, policy)
    # 2. Then the rebalance itself, from where the flow trades leave the fund.
    after_flow = rows.assign(market_value=rows["market_value"] + flow_value)
    after_flow["current_weight"] = after_flow["market_value"] / after_flow["nav"]
    after_flow["drift"] = after_flow["current_weight"] - after_flow["target_weight"]
    tolerance = after_flow["band_upper"] - after_flow["target_weight"]
    after_flow["breached"] = ((after_flow["drift"].abs() > (tolerance + WEIGHT_EPS).fillna(np.inf))
                              | ((after_flow["target_weight"] <= 0) & (after_flow["quantity"] > 0)))
    class_level = fund.map(band_levels(funds) == BAND_LEVEL_ASSET_CLASS).fillna(False).astype(bool)
    # Class-level funds keep the class verdict (a flow is judged on the securities' bands).
    after_flow["breached"] = after_flow["breached"].where(~class_level, rows["breached"])
    still_breached = after_flow["breached"].groupby(fund).transform("any")
    rebalances = (rows["trigger"].isin([TRIGGER_CALENDAR, *TO_TARGET_TRIGGERS])
                  | ((rows["trigger"] == TRIGGER_THRESHOLD) & still_breached)
                  | rows["restriction_move"])
    destination = destination_weight(after_flow)
    rebalance_value = ((destination * rows["nav"] - after_flow["market_value"]).where(rebalances, 0.0)).fillna(0.0)
    on_class = class_level & ~rows["trigger"].isin(TO_TARGET_TRIGGERS)
    if on_class.any() and class_drift is not None:
        class_value = class_trades(after_flow[on_class], class_drift, securities)
        rebalance_value = rebalance_value.where(~on_class, class_value.reindex(rows.index).where(rebalances, 0.0)
                                                ).fillna(0.0)
    return _Sized(rows, flow_value, rebalance_value, rebalances, destination, rows["price"] * rows["fx_rate"])


def _lots_and_minimums(sized: _Sized) -> pd.Series:
    """Quantities: never selling more than is held, within the rules, in lots, above the minimum."""
    rows = sized.rows
    qty = (sized.flow_value + sized.rebalance_value) / sized.unit_value
    qty = np.maximum(qty.fillna(0.0), -rows["quantity"])
    qty = obey_rules(qty, rows)
    qty = round_to_lots(qty, rows, sell_all=sized.rebalances & (sized.destination <= 0) & (rows["quantity"] > 0))
    return drop_small(qty, sized.unit_value, rows["min_trade_notional"])


def _apply_caps(qty: pd.Series, unit_value: pd.Series, rows: pd.DataFrame, policy: pd.DataFrame):
    """Caps per rebalance: every trade of the fund scaled down to its turnover or cost limit;
    (quantities, per fund the cap that bit: ``turnover``, ``cost`` or None)."""
    fund = rows["fund_id"]
    gross = (qty.abs() * unit_value).groupby(fund).sum().reindex(policy.index, fill_value=0.0)
    cost = trade_costs(qty, unit_value, rows).groupby(fund).sum().reindex(policy.index, fill_value=0.0)
    turnover = gross / (2 * policy["nav_before"])
    cost_bps = cost / policy["nav_before"] * 1e4
    cap = pd.concat([(policy["max_turnover"] / turnover.where(turnover > 0)),
                     (policy["max_cost_bps"] / cost_bps.where(cost_bps > 0))], axis=1).min(axis=1).clip(upper=1.0)
    capped_by = np.select([cap < 1], [np.where(policy["max_turnover"] / turnover.where(turnover > 0) <= cap,
                                                "turnover", "cost")], default=None)
    if (cap < 1).any():
        row_cap = fund.map(cap.fillna(1.0))
        qty = qty.where(row_cap >= 1, round_toward_zero(qty * row_cap, rows))
        qty = drop_small(qty, unit_value, rows["min_trade_notional"])
    return qty, capped_by


def _fit_cash(qty: pd.Series, unit_value: pd.Series, rows: pd.DataFrame, policy: pd.DataFrame) -> pd.Series:
    """Cash check: what the fund may spend is its cash, plus what it sells net of costs, less
    its buffer; buys (with their costs) are scaled down to fit."""
    fund = rows["fund_id"]
    notional = qty * unit_value
    costs = trade_costs(qty, unit_value, rows)
    is_buy = qty > 0
    proceeds = (-notional - costs).where(~is_buy & (qty != 0), 0.0).groupby(fund).sum()
    spend = (notional + costs).where(is_buy, 0.0).groupby(fund).sum()
    available = policy["cash"] + proceeds.reindex(policy.index, fill_value=0.0) - policy["cash_buffer"] * policy["nav"]
    wanted = spend.reindex(policy.index, fill_value=0.0)
    factor = np.where(wanted > available, np.clip(available / wanted.where(wanted > 0), 0.0, 1.0), 1.0)
    factor = pd.Series(factor, index=policy.index).fillna(0.0)
    row_factor = fund.map(factor)
    needs_cut = is_buy & (row_factor < 1.0)
    if needs_cut.any():
        # Shave a hair off the factor so float rounding can never overspend (costs are
        # sub-linear in size, so scaling the buys scales their cost at least as much).
        scaled = qty.where(~needs_cut, qty * row_factor * (1 - 1e-12))
        scaled = round_to_lots(scaled.where(needs_cut, 0.0), rows, sell_all=pd.Series(False, index=rows.index))
        qty = qty.where(~needs_cut, scaled)
        qty = drop_small(qty, unit_value, rows["min_trade_notional"])
    return qty


def _assemble(as_of, rows, qty, unit_value, policy, from_flow_only, fixed_trades=None
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    traded = qty != 0
    t = rows.loc[traded]
    q = qty[traded]
    notional = q * unit_value[traded]
    trades = pd.DataFrame({
        "fund_id": t["fund_id"],
        "security_id": t["security_id"],
        "side": np.where(q > 0, "BUY", "SELL"),
        "quantity": q.abs(),
        "price": t["price"],
        "currency": t["currency"],
        "notional": notional.abs(),
        "weight_before": t["current_weight"],
        "weight_after": (t["market_value"] + notional) / t["nav"],   # of the NAV after the flow
        "target_weight": t["target_weight"],
        "est_cost": trade_costs(q, unit_value[traded], t),
        "est_realized_gain": np.nan,
        "reason": np.select(
            [from_flow_only[traded], t["excluded"], t["trigger"].isin(TO_TARGET_TRIGGERS), t["restriction_move"],
             t["breached"], t["restricted"], t["trigger"] == TRIGGER_CALENDAR],
            [REASON_CASH_FLOW, REASON_RESTRICTION, t["trigger"], REASON_RESTRICTION,
             REASON_BAND, REASON_RESTRICTION, REASON_CALENDAR], default=REASON_TO_TARGET),
        "harvest_of": None,
    })
    if fixed_trades is not None and len(fixed_trades):
        fixed = fixed_trades[fixed_trades["fund_id"].isin(policy.index)]
        trades = pd.concat([trades, fixed.reindex(columns=trades.columns)], ignore_index=True) if len(trades) else (
            fixed.reindex(columns=trades.columns).reset_index(drop=True))
        signed_fixed = np.where(fixed["side"] == "BUY", fixed["notional"], -fixed["notional"])
        notional = pd.concat([notional.reset_index(drop=True), pd.Series(signed_fixed, dtype="float64")],
                             ignore_index=True)
    if trades.empty:
        return _empty(PROPOSAL_COLUMNS), _empty(TRADE_COLUMNS)

    signed = notional.set_axis(trades.index)
    by_fund = pd.DataFrame({
        "gross": trades.groupby("fund_id")["notional"].sum(),
        "est_cost": trades.groupby("fund_id")["est_cost"].sum(),
        "net_spend": signed.groupby(trades["fund_id"]).sum(),
        "trade_count": trades.groupby("fund_id").size(),
        "fingerprint": _fingerprint(trades),
    })
    proposals = by_fund.join(policy[["nav_before", "cash_before", "cash", "flow", "trigger", "capped_by",
                                     "cash_buffer"]].join(policy["nav"].rename("nav_after")), how="left")
    proposals["proposal_id"] = (proposals.index.to_series() + "-" + as_of.strftime("%Y%m%d") + "-"
                                + proposals["fingerprint"])
    proposals["as_of_date"] = as_of
    proposals["nav"] = proposals["nav_before"]
    proposals["turnover"] = proposals["gross"] / (2 * proposals["nav"])
    proposals["est_realized_gain"] = np.nan
    # The flow settled, trades done and paid for.
    proposals["cash_after"] = proposals["cash"] - proposals["net_spend"] - proposals["est_cost"]
    capped = np.where(proposals["capped_by"].notna(),
                      "scaled down to the fund's " + proposals["capped_by"].fillna("") + " cap", "")
    short = proposals["cash_after"] < proposals["cash_buffer"] * proposals["nav_after"] - 1e-6
    buffer_note = np.where(short, "cash stays below its buffer: nothing left to sell toward it", "")
    parts = pd.DataFrame({"capped": capped, "buffer": buffer_note,
                          "wash": wash_notes(rows).reindex(proposals.index).fillna("")}, index=proposals.index)
    notes = parts["capped"].str.cat([parts["buffer"], parts["wash"]], sep="; ")
    proposals["notes"] = notes.str.replace(r"(; )+", "; ", regex=True).str.strip("; ").replace("", None)
    proposals["restriction_note"] = restriction_notes(rows, qty).reindex(proposals.index)
    proposals = proposals.rename_axis("fund_id").reset_index()

    trades["proposal_id"] = trades["fund_id"].map(proposals.set_index("fund_id")["proposal_id"])
    trades = trades.sort_values(["fund_id", "security_id"], kind="stable", ignore_index=True)
    return proposals[PROPOSAL_COLUMNS], trades[TRADE_COLUMNS]


def _fingerprint(trades: pd.DataFrame) -> pd.Series:
    """A short hash of a fund's trades, so the same proposal always gets the same id.

    Row hashes are summed per fund (order-free, vectorized); quantities are rounded so
    that float noise does not change the id.
    """
    keyed = pd.DataFrame({
        "fund_id": trades["fund_id"],
        "security_id": trades["security_id"],
        "side": trades["side"],
        "micro_units": (trades["quantity"] * 1e6).round().astype("int64"),
    })
    hashed = pd.util.hash_pandas_object(keyed, index=False)
    total = hashed.groupby(trades["fund_id"].to_numpy()).sum()
    # 12 hex digits per fund without a Python call per fund: nibbles → characters → strings.
    nibbles = (total.to_numpy(dtype="uint64")[:, None] >> np.arange(44, -1, -4, dtype="uint64")) & np.uint64(0xF)
    chars = np.array(list("0123456789abcdef"))[nibbles.astype("int64")]
    return pd.Series(np.ascontiguousarray(chars).view("<U12").ravel(), index=total.index)


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
