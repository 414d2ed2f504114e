"""Triggers and trade sizing: from drift to rebalancing proposals, all funds at once.

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

import numpy as np
import pandas as pd

from rebalance_core.calendar import DEFAULT_CALENDAR, period_starts
from rebalance_core.drift import band_levels, security_classes
from rebalance_core.models import isin_ids
from rebalance_core.restrictions import rule_pairs
from rebalance_core.schema import (
    BAND_FRACTION,
    BAND_LEVEL_ASSET_CLASS,
    CASH,
    REASON_BAND,
    REASON_CALENDAR,
    REASON_CASH_FLOW,
    REASON_RESTRICTION,
    RULE_EXCLUDE,
    RULE_NO_BUY,
    RULE_NO_SELL,
    TO_TARGET_TRIGGERS,
    TRIGGER_CALENDAR,
    TRIGGER_CASH_FLOW,
    TRIGGER_THRESHOLD,
    VANGUARD_DESTINATION,
    VANGUARD_TRIGGER,
    WEIGHT_EPS,
)

TRADE_COLUMNS = [
    "proposal_id", "fund_id", "security_id", "side", "quantity", "price", "currency", "notional",
    "weight_before", "weight_after", "target_weight", "est_cost", "est_realized_gain", "reason", "harvest_of",
]
PROPOSAL_COLUMNS = [
    "proposal_id", "as_of_date", "fund_id", "trigger", "nav", "turnover", "est_cost",
    "est_realized_gain", "trade_count", "cash_before", "cash_after", "flow", "notes", "restriction_note",
]
COST_COLUMNS = ["commission_bps", "commission_per_share", "max_turnover", "max_cost_bps", "min_trade_pct_nav"]
# Market impact at 100 % of a day's volume, as a fraction of the notional (square-root law).
IMPACT_COEFFICIENT = 0.01
REASON_TO_TARGET = "to_target"  # a holding inside its band, traded because the fund rebalances to target
QTY_EPS = 1e-9
# Rules propose() applies besides restrictions.csv's: derived tonight by the caller.
RULE_WASH_NO_BUY = "wash_no_buy"    # buying it would be a wash sale (a loss sale in the last 30 days)
RULE_WASH_NO_SELL = "wash_no_sell"  # selling it at a loss would be a wash sale (bought in the last 30 days)
RULE_HOLD = "hold"                  # a tax trade (harvest, swap back) moves it tonight: no other trade


def resolve_triggers(as_of: dt.date, funds: pd.DataFrame, summary: pd.DataFrame) -> pd.Series:
    """Trigger per fund (index fund_id): ``calendar``, ``threshold`` or None.

    calendar: on the first trading day of each ``frequency`` period; threshold: when any
    holding breaches; hybrid: a breach seen on a calendar date (reported as ``threshold``,
    since the bands decided it).
    """
    calendars = funds["calendar"] if "calendar" in funds else pd.Series(DEFAULT_CALENDAR, index=funds.index)
    calendars = calendars.fillna(DEFAULT_CALENDAR)
    # One calendar lookup per calendar, however many funds share it; then a join.
    starts = pd.DataFrame([(cal, freq, due) for cal in calendars.unique()
                           for freq, due in period_starts(as_of, cal).items()],
                          columns=["calendar", "frequency", "due"]).set_index(["calendar", "frequency"])["due"]
    keys = pd.MultiIndex.from_arrays([calendars, funds["frequency"].fillna("")])
    on_calendar = pd.Series(starts.reindex(keys).fillna(False).to_numpy(dtype=bool), index=funds.index)

    breached = funds["fund_id"].map(summary.set_index("fund_id")["breached"]).fillna(False).astype(bool)
    policy = funds["policy"]
    trigger = np.select(
        [(policy == "calendar") & on_calendar,
         (policy == "threshold") & breached,
         (policy == "hybrid") & on_calendar & breached],
        [TRIGGER_CALENDAR, TRIGGER_THRESHOLD, TRIGGER_THRESHOLD],
        default=None,
    )
    return pd.Series(trigger, index=funds["fund_id"].to_numpy(), name="trigger", dtype="object")


def flow_per_fund(flows: pd.DataFrame | None, fund_ids) -> pd.Series:
    """Net pending subscription (+) / redemption (−) per fund in base currency (0 when none)."""
    index = pd.Index(fund_ids)
    if flows is None or flows.empty:
        return pd.Series(0.0, index=index)
    return flows.groupby("fund_id")["amount"].sum().reindex(index).fillna(0.0)


def resolve_flow_triggers(drift: pd.DataFrame, summary: pd.DataFrame, funds: pd.DataFrame,
                          flows: pd.DataFrame | None, triggers: pd.Series) -> pd.Series:
    """Add ``cash_flow`` for funds that cannot absorb their flow within their bands.

    After a flow, NAV and cash move by its amount and every weight with them. A fund whose
    holdings all stay inside their bands, and whose cash still covers its buffer, absorbs it
    and trades nothing; otherwise it trades the flow (trigger ``cash_flow``) unless another
    trigger already makes it rebalance.
    """
    state = summary.set_index("fund_id")[["nav", "cash"]]
    flow = flow_per_fund(flows, state.index)
    if not (flow != 0).any():
        return triggers
    buffer = funds.drop_duplicates("fund_id").set_index("fund_id")["cash_buffer"].reindex(state.index).fillna(0.0)
    nav_after = state["nav"] + flow
    cash_after = state["cash"] + flow
    rows = drift[(drift["security_id"] != CASH) & drift["fund_id"].map(flow != 0).fillna(False).astype(bool)]
    weight_after = rows["market_value"] / rows["fund_id"].map(nav_after)
    tolerance = rows["band_upper"] - rows["target_weight"]
    outside = (weight_after - rows["target_weight"]).abs() > (tolerance + WEIGHT_EPS).fillna(np.inf)
    breach_after = (outside | ((rows["target_weight"] <= 0) & (rows["quantity"] > 0))).groupby(rows["fund_id"]).any()
    cannot_absorb = (flow != 0) & (breach_after.reindex(state.index).fillna(False).astype(bool)
                                   | (cash_after < buffer * nav_after - 1e-6))
    flow_trigger = pd.Series(np.where(cannot_absorb, TRIGGER_CASH_FLOW, None), index=state.index, dtype="object")
    return triggers.where(triggers.notna(), flow_trigger.reindex(triggers.index))


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
    fund_state = summary.set_index("fund_id")[["nav", "cash"]]
    blocked_ids = set(blocked["fund_id"]) if blocked is not None else set()
    active = triggers.dropna()
    active = active[~active.index.isin(blocked_ids) & active.index.isin(fund_state.index[fund_state["nav"].notna()])]
    if active.empty:
        return _empty(PROPOSAL_COLUMNS), _empty(TRADE_COLUMNS)

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

    rows = drift.loc[drift["fund_id"].isin(policy.index) & (drift["security_id"] != CASH)]
    rows = rows.join(policy, on="fund_id")
    rows = _attach_security_terms(rows, securities)
    fund = rows["fund_id"]
    rows = _apply_rules(rows, restrictions, restriction_moves)
    rows = _rescale_around_frozen(rows, fund)

    # 1. Cash flows first: the most underweight holdings absorb a subscription, the most
    #    overweight ones fund a redemption.
    flow_value = _flow_trades(rows, policy)
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
    destination = _destination_weight(after_flow)
    rebalance_value = ((destination * rows["nav"] - after_flow["market_value"]).where(rebalances, 0.0)).fillna(0.0)
    on_class = class_level & ~rows["trigger"].isin(TO_TARGET_TRIGGERS)
    if on_class.any() and class_drift is not None:
        class_value = _class_trades(after_flow[on_class], class_drift, securities)
        rebalance_value = rebalance_value.where(~on_class, class_value.reindex(rows.index).where(rebalances, 0.0)
                                                ).fillna(0.0)

    unit_value = rows["price"] * rows["fx_rate"]
    qty = (flow_value + rebalance_value) / unit_value
    qty = np.maximum(qty.fillna(0.0), -rows["quantity"])
    qty = _obey_rules(qty, rows)
    qty = _round_to_lots(qty, rows, sell_all=rebalances & (destination <= 0) & (rows["quantity"] > 0))
    qty = _drop_small(qty, unit_value, rows["min_trade_notional"])

    # Caps per rebalance: scale every trade of the fund down to its turnover or cost limit.
    gross = (qty.abs() * unit_value).groupby(fund).sum().reindex(policy.index, fill_value=0.0)
    cost = trade_costs(qty, unit_value, rows).groupby(fund).sum().reindex(policy.index, fill_value=0.0)
    turnover = gross / (2 * policy["nav_before"])
    cost_bps = cost / policy["nav_before"] * 1e4
    cap = pd.concat([(policy["max_turnover"] / turnover.where(turnover > 0)),
                     (policy["max_cost_bps"] / cost_bps.where(cost_bps > 0))], axis=1).min(axis=1).clip(upper=1.0)
    policy["capped_by"] = np.select([cap < 1], [np.where(policy["max_turnover"] / turnover.where(turnover > 0) <= cap,
                                                          "turnover", "cost")], default=None)
    if (cap < 1).any():
        row_cap = fund.map(cap.fillna(1.0))
        qty = qty.where(row_cap >= 1, _round_toward_zero(qty * row_cap, rows))
        qty = _drop_small(qty, unit_value, rows["min_trade_notional"])

    # Cash check: what the fund may spend is its cash, plus what it sells net of costs, less
    # its buffer; buys (with their costs) are scaled down to fit.
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
        scaled = _round_to_lots(scaled.where(needs_cut, 0.0), rows, sell_all=pd.Series(False, index=rows.index))
        qty = qty.where(~needs_cut, scaled)
        qty = _drop_small(qty, unit_value, rows["min_trade_notional"])

    qty = _obey_rules(qty, rows)
    # An excluded holding is sold whole, whatever minimums or caps said (a mandate).
    must_sell = (rows["excluded"] & (rows["quantity"] > 0) & rows["listed_tradable"] & rows["price"].notna()
                 & ~rows["no_sell"] & ~rows["hold"])
    qty = qty.where(~must_sell, -rows["quantity"])
    from_flow_only = (flow_value != 0) & (rebalance_value == 0)
    return _assemble(as_of, rows, qty, unit_value, policy, from_flow_only, fixed_trades)


def _class_trades(rows: pd.DataFrame, class_drift: pd.DataFrame, securities: pd.DataFrame | None) -> pd.Series:
    """Signed value each security of a class-level fund trades: its class moves from its
    weight to its destination (the class target, or toward its band edge for band-style
    funds; a class inside its band stays unless the date is a calendar one), and the class's
    trade is split over its tradable securities in proportion to their targets (a class
    with no target is sold)."""
    fund = rows["fund_id"]
    cls = security_classes(rows["security_id"], securities)
    key = [fund, cls]
    tradable = rows["tradable"] & rows["price"].notna()
    target = rows["target_weight"] * rows["target_scale"]
    class_target = target.groupby(key).transform("sum")
    class_raw_target = rows["target_weight"].groupby(key).transform("sum")
    class_weight = rows["current_weight"].groupby(key).transform("sum")
    bands = class_drift.set_index(["fund_id", "asset_class"])
    index = pd.MultiIndex.from_arrays([fund, cls])
    tolerance = pd.Series((bands["band_upper"] - bands["target_weight"]).reindex(index).to_numpy(),
                          index=rows.index).fillna(0.0)
    breached = pd.Series(bands["breached"].reindex(index).fillna(False).to_numpy(dtype=bool), index=rows.index)
    fraction = rows["band_fraction"].fillna(rows["rebalance_to"].map(BAND_FRACTION)).fillna(1.0)
    offset = np.where(rows["rebalance_to"] == "vanguard", np.minimum(tolerance, VANGUARD_DESTINATION),
                      fraction * tolerance)
    toward_band = class_raw_target + np.sign(class_weight - class_raw_target) * offset
    band_style = (rows["rebalance_to"] != "target") | rows["band_fraction"].notna()
    full = rows["trigger"] == TRIGGER_CALENDAR
    destination = np.where(band_style & ~full, toward_band, class_target)
    destination = np.where(breached | full, destination, class_weight)
    destination = np.where(class_raw_target <= 0, 0.0, destination)
    share_base = target.where(tradable, 0.0)
    share = share_base / share_base.groupby(key).transform("sum").replace(0.0, np.nan)
    value = (destination - class_weight) * rows["nav"] * share
    # A class with no target: each held security is sold whole.
    value = value.where(class_raw_target > 0, -rows["market_value"].where(tradable, 0.0))
    return value.fillna(0.0)


def _apply_rules(rows: pd.DataFrame, restrictions: pd.DataFrame | None,
                 restriction_moves: pd.DataFrame | None) -> pd.DataFrame:
    """Flags per holding from the fund's rules; a holding whose target asks for a move its
    rules forbid (or that a tax trade moves tonight) is frozen like a non-tradable one."""
    # Only the rows of funds that have a rule are looked at (a few of a large book).
    ruled = (isin_ids(rows["fund_id"], restrictions["fund_id"]) if restrictions is not None and len(restrictions)
             else np.zeros(len(rows), dtype=bool))
    keys = pd.MultiIndex.from_frame(rows.loc[ruled, ["fund_id", "security_id"]]) if ruled.any() else None

    def has(*rules) -> np.ndarray:
        out = np.zeros(len(rows), dtype=bool)
        if keys is not None:
            out[ruled] = np.logical_or.reduce([keys.isin(rule_pairs(restrictions, r)) for r in rules])
        return out

    rows = rows.assign(no_buy=has(RULE_NO_BUY), no_sell=has(RULE_NO_SELL), excluded=has(RULE_EXCLUDE),
                       wash_no_buy=has(RULE_WASH_NO_BUY), wash_no_sell=has(RULE_WASH_NO_SELL), hold=has(RULE_HOLD))
    holds_excluded = rows["fund_id"].isin(rows.loc[rows["excluded"] & (rows["quantity"] > 0), "fund_id"].unique())
    moved = np.zeros(len(rows), dtype=bool)
    if restriction_moves is not None and len(restriction_moves):
        moving = isin_ids(rows["fund_id"], restriction_moves["fund_id"])
        moved[moving] = pd.MultiIndex.from_frame(rows.loc[moving, ["fund_id", "security_id"]]).isin(
            pd.MultiIndex.from_frame(restriction_moves[["fund_id", "security_id"]]))
    rows["restriction_move"] = holds_excluded & (moved | rows["excluded"])
    wanted = rows["target_weight"] * rows["target_scale"] - rows["current_weight"]
    may_not_buy = rows["no_buy"] | rows["excluded"] | rows["wash_no_buy"]
    # An exclusion is a mandate: it is sold even when the sale washes a loss (flagged).
    rows["wash_no_sell"] = rows["wash_no_sell"] & ~rows["excluded"]
    may_not_sell = rows["no_sell"] | rows["wash_no_sell"]
    rows["listed_tradable"] = rows["tradable"]
    rows["frozen_by_rule"] = rows["tradable"] & ((may_not_buy & (wanted > WEIGHT_EPS))
                                                 | (may_not_sell & (wanted < -WEIGHT_EPS)) | rows["hold"])
    rows["tradable"] = rows["tradable"] & ~rows["frozen_by_rule"]
    return rows


def _obey_rules(qty: pd.Series, rows: pd.DataFrame) -> pd.Series:
    """No trade breaks a rule, whatever sizing asked (flows spread pro rata included)."""
    may_not_buy = rows["no_buy"] | rows["excluded"] | rows["wash_no_buy"] | rows["hold"]
    may_not_sell = rows["no_sell"] | rows["wash_no_sell"] | rows["hold"]
    qty = qty.where(~may_not_buy, np.minimum(qty, 0.0))
    return qty.where(~may_not_sell, np.maximum(qty, 0.0))


def _restriction_notes(rows: pd.DataFrame, qty: pd.Series) -> pd.Series:
    """Per fund, what restrictions.csv changed in its proposal (None: nothing)."""
    sold_excluded = rows["excluded"] & (rows["quantity"] > 0)
    kept = rows["frozen_by_rule"] & (rows["no_buy"] | rows["no_sell"] | rows["excluded"])
    noted = sold_excluded | kept
    if not noted.any():
        return pd.Series(dtype="object")
    r = rows[noted]
    unsold = sold_excluded[noted] & (qty[noted] >= 0)
    text = np.select(
        [sold_excluded[noted] & ~unsold, unsold, r["no_sell"], r["no_buy"] | r["excluded"]],
        ["exclude " + r["security_id"] + ": sold",
         "exclude " + r["security_id"] + ": held and cannot be sold now",
         "no_sell " + r["security_id"] + ": not sold (its target asks to)",
         "no_buy " + r["security_id"] + ": not bought (its target asks to)"], default="")
    return pd.Series(text, index=r.index).groupby(r["fund_id"]).agg("; ".join)


def _wash_notes(rows: pd.DataFrame) -> pd.Series:
    """Per fund, the trades left out to avoid a wash sale."""
    noted = rows["frozen_by_rule"] & (rows["wash_no_buy"] | rows["wash_no_sell"]) & ~rows["hold"]
    if not noted.any():
        return pd.Series(dtype="object")
    r = rows[noted]
    text = np.where(r["wash_no_buy"], "not bought: " + r["security_id"] + " (loss sale in the last 30 days)",
                    "not sold at a loss: " + r["security_id"] + " (bought in the last 30 days)")
    return pd.Series(text, index=r.index).groupby(r["fund_id"]).agg("; ".join).radd("wash sale avoided, ")


def _rescale_around_frozen(rows: pd.DataFrame, fund: pd.Series) -> pd.DataFrame:
    """Restrictions: non-tradable holdings stay as they are, and the tradable targets are
    rescaled to share what is left of the fund (after the frozen weight and the cash reserve)."""
    frozen = ~rows["tradable"]
    rows = rows.assign(restricted=frozen.groupby(fund).transform("any"))
    if not frozen.any():
        return rows
    frozen_weight = rows["current_weight"].where(frozen, 0.0).groupby(fund).transform("sum")
    tradable_target = (rows["target_weight"] * rows["target_scale"]).where(~frozen, 0.0).groupby(fund).transform("sum")
    room = (1 - rows["reserve"] - frozen_weight).clip(lower=0.0)
    factor = (room / tradable_target.where(tradable_target > 0)).fillna(0.0)
    rows["target_scale"] = rows["target_scale"].where(~rows["restricted"], rows["target_scale"] * factor)
    return rows


def _flow_trades(rows: pd.DataFrame, policy: pd.DataFrame) -> pd.Series:
    """Signed value each holding trades to invest or raise its fund's flow (0 without a flow).

    Invest: the subscription, less what the cash reserve keeps, goes to the holdings
    furthest below target first (each up to its target), any rest pro rata to targets.
    Raise: what cash lacks to cover the buffer after a redemption comes from the holdings
    furthest above target first (each down to its target), any rest pro rata to value.
    """
    flow = rows["fund_id"].map(policy["flow"])
    if not (flow != 0).any():
        return pd.Series(0.0, index=rows.index)
    cash, nav = rows["fund_id"].map(policy["cash"]), rows["nav"]
    invest = np.where(flow > 0, np.clip(np.minimum(flow, cash - rows["reserve"] * nav), 0.0, None), 0.0)
    raise_ = np.where(flow < 0, np.clip(rows["cash_buffer"] * nav - cash, 0.0, None), 0.0)
    tradable = rows["tradable"] & rows["price"].notna()
    gap = ((rows["target_weight"] * rows["target_scale"] * nav) - rows["market_value"]).where(tradable, 0.0)
    buys = _greedy_fill(rows["fund_id"], gap.clip(lower=0.0), pd.Series(invest, index=rows.index),
                        spill=(rows["target_weight"] * tradable))
    sells = _greedy_fill(rows["fund_id"], (-gap).clip(lower=0.0), pd.Series(raise_, index=rows.index),
                         spill=rows["market_value"].where(tradable, 0.0))
    return (buys - sells).fillna(0.0)


def _greedy_fill(fund: pd.Series, room: pd.Series, amount: pd.Series, spill: pd.Series) -> pd.Series:
    """Spread each fund's ``amount`` over its rows, largest ``room`` first; the rest by ``spill``."""
    order = pd.DataFrame({"fund": fund, "room": room}).sort_values(["fund", "room"], ascending=[True, False])
    cumulative = order.groupby("fund", sort=False)["room"].cumsum()
    before = (cumulative - order["room"]).reindex(room.index)
    filled = np.clip(amount - before, 0.0, room)
    leftover = (amount - room.groupby(fund).transform("sum")).clip(lower=0.0)
    share = spill / spill.groupby(fund).transform("sum").replace(0.0, np.nan)
    return filled + (leftover * share).fillna(0.0)


def _attach_security_terms(rows: pd.DataFrame, securities: pd.DataFrame | None) -> pd.DataFrame:
    if securities is None or securities.empty:
        return rows.assign(lot_size=1.0, tradable=True, half_spread_bps=0.0, adv=np.nan)
    terms = securities.drop_duplicates("security_id").set_index("security_id")
    terms = terms.reindex(columns=["lot_size", "tradable", "half_spread_bps", "adv"])
    rows = rows.join(terms, on="security_id")
    rows["lot_size"] = rows["lot_size"].where(rows["lot_size"] > 0, 1.0).fillna(1.0)
    rows["tradable"] = rows["tradable"].fillna(True).astype(bool)
    rows["half_spread_bps"] = pd.to_numeric(rows["half_spread_bps"], errors="coerce").fillna(0.0)
    rows["adv"] = pd.to_numeric(rows["adv"], errors="coerce")
    return rows


def trade_costs(qty: pd.Series, unit_value: pd.Series, rows: pd.DataFrame) -> pd.Series:
    """Estimated cost of each trade in base currency (>= 0).

    commission: ``commission_bps`` of the notional plus ``commission_per_share`` × shares
    (fund terms); half spread: ``half_spread_bps`` of the notional (security terms); market
    impact, when the security's average daily volume ``adv`` is known:
    IMPACT_COEFFICIENT × sqrt(shares / adv) of the notional (the square-root law).
    """
    shares = qty.abs().astype("float64")
    notional = shares * unit_value.astype("float64")
    terms = rows[["commission_bps", "half_spread_bps", "adv", "commission_per_share"]].astype("float64")
    bps = terms["commission_bps"].fillna(0.0) + terms["half_spread_bps"].fillna(0.0)
    impact = (IMPACT_COEFFICIENT * np.sqrt(shares / terms["adv"].where(terms["adv"] > 0))).fillna(0.0)
    cost = notional * (bps / 1e4 + impact) + shares * terms["commission_per_share"].fillna(0.0)
    return cost.where(shares > 0, 0.0).fillna(0.0)


def _round_toward_zero(qty: pd.Series, rows: pd.DataFrame) -> pd.Series:
    lots = np.trunc(qty / rows["lot_size"] + np.sign(qty) * QTY_EPS) * rows["lot_size"]
    return pd.Series(np.where(rows["allow_fractional"], qty, lots), index=qty.index)


def _destination_weight(rows: pd.DataFrame) -> pd.Series:
    """Weight each holding should end at (before lots, minimums and cash).

    ``target``: every holding to its target. ``band``/``halfway``/``band_fraction``: only the
    breaching holdings, to target ± fraction × band on the side they drifted to (Leland's
    band edge is 1, Daryanani's halfway 0.5). ``vanguard``: breaching holdings to target
    ± 1.75 pp.
    """
    current = rows["current_weight"]
    target = rows["target_weight"] * rows["target_scale"]
    tolerance = (rows["band_upper"] - rows["target_weight"]).fillna(0.0)
    fraction = rows["band_fraction"].fillna(rows["rebalance_to"].map(BAND_FRACTION)).fillna(1.0)
    offset = np.where(rows["rebalance_to"] == "vanguard", np.minimum(tolerance, VANGUARD_DESTINATION),
                      fraction * tolerance)
    toward_band = rows["target_weight"] + np.sign(rows["drift"]) * offset
    band_style = (((rows["rebalance_to"] != "target") | rows["band_fraction"].notna())
                  & ~rows["trigger"].isin(TO_TARGET_TRIGGERS))
    destination = np.where(band_style, np.where(rows["breached"], toward_band, current), target)
    destination = pd.Series(destination, index=rows.index)
    destination[rows["target_weight"] <= 0] = 0.0
    destination[~rows["tradable"]] = current[~rows["tradable"]]
    return destination


def apply_presets(funds: pd.DataFrame) -> pd.DataFrame:
    """Fill policy presets into the funds frame (today: Vanguard's 2 pp trigger band)."""
    funds = funds.copy()
    if "band_fraction" not in funds:
        funds["band_fraction"] = np.nan
    vanguard_without_band = (funds["rebalance_to"] == "vanguard") & funds["abs_band"].isna() & funds["rel_band"].isna()
    funds.loc[vanguard_without_band, "abs_band"] = VANGUARD_TRIGGER
    return funds


def _round_to_lots(qty: pd.Series, rows: pd.DataFrame, sell_all: pd.Series) -> pd.Series:
    """Whole lots unless fractional: sells to the nearest lot (capped at the holding), buys down."""
    lot = rows["lot_size"]
    fractional = rows["allow_fractional"]
    sells = np.minimum(np.round(-qty / lot) * lot, rows["quantity"])
    buys = np.floor(qty / lot + QTY_EPS) * lot
    rounded = np.where(qty < 0, -sells, buys)
    rounded = np.where(fractional, qty, rounded)
    # Closing a position sells all of it, odd lot included.
    rounded = np.where(sell_all & (qty < 0), -rows["quantity"], rounded)
    return pd.Series(rounded, index=qty.index)


def _drop_small(qty: pd.Series, unit_value: pd.Series, minimum: pd.Series) -> pd.Series:
    notional = (qty * unit_value).abs()
    keep = (qty.abs() > QTY_EPS) & (notional >= minimum) & (notional > 0)
    return qty.where(keep, 0.0)


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
                          "wash": _wash_notes(rows).reindex(proposals.index).fillna("")}, index=proposals.index)
    notes = parts["capped"].str.cat([parts["buffer"], parts["wash"]], sep="; ")
    proposals["notes"] = notes.str.replace(r"(; )+", "; ", regex=True).str.strip("; ").replace("", None)
    proposals["restriction_note"] = _restriction_notes(rows, qty).reindex(proposals.index)
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
