"""Tax-loss harvesting: selling lots at a loss into a substitute, and the swap back.

For a fund with ``harvest_loss_pct`` (funds.csv) and tax lots on file:

- a lot *qualifies* when the price is at or below ``unit_cost × (1 − harvest_loss_pct)``;
  a security is harvested when its qualifying lots lose at least ``harvest_min_loss``
  (base currency; 0 when empty) together;
- the harvest sells exactly those lots (trade reason ``tax``; the highest-cost lots, so the
  lot choice is HIFO whatever the fund's method) and buys, with the proceeds less both
  trades' costs, the first substitute by rank (substitutes.csv) that the fund may buy: it
  is tradable and priced, no restriction forbids it, the fund sold it at a loss in the last
  30 days (a wash sale) or is harvesting it tonight;
- no harvest when the fund bought the security in the last 30 days (a lot acquired in the
  window, or an approved buy), when a restriction forbids selling it, or when no substitute
  can be bought (not even one lot);
- while the harvest is open the substitute stands in for the security: the pair shares the
  security's target in proportion to what each is worth and is judged on its bands as one
  holding (``split_pair_targets``, ``judge_pairs``);
- the swap back: from 31 days after the harvest, when selling every lot of the substitute
  realizes no short-term gain (and the fund may buy the security again), the substitute is
  sold and the security bought with the proceeds less costs (reason ``tax``).

Tax trades are decided here and join the fund's proposal as they are (trigger ``tax``
when nothing else makes the fund trade); the holdings they move are held still for the
rest of the night's sizing. Every step is a join or a groupby over all funds at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rebalance_core.drift import fx_to_base
from rebalance_core.harvest_pairs import (  # noqa: F401  (re-exported: the pairs live there)
    HARVEST_TRADE_COLUMNS,
    PAIR_COLUMNS,
    empty_pairs,
    held_pairs,
    judge_pairs,
    open_harvests,
    split_pair_targets,
)
from rebalance_core.proposals import TRADE_COLUMNS
from rebalance_core.restrictions import rule_pairs
from rebalance_core.schema import (
    REASON_TAX,
    RULE_EXCLUDE,
    RULE_NO_BUY,
    RULE_NO_SELL,
    WASH_SALE_DAYS,
)
from rebalance_core.trade_rules import RULE_HOLD, RULE_WASH_NO_BUY, RULE_WASH_NO_SELL
from rebalance_core.trade_sizing import QTY_EPS, trade_costs

SWAP_BACK_DAYS = 31
LONG_TERM_DAYS = 365
KEY = ["fund_id", "security_id"]


@dataclass(frozen=True)
class HarvestPlan:
    trades: pd.DataFrame   # TRADE_COLUMNS without proposal_id, plus lot_rule (harvest sells: "hifo")
    hold: pd.DataFrame     # fund_id, security_id, rule = RULE_HOLD: moved by a tax trade tonight
    funds: pd.Index        # funds with a tax trade tonight


def harvesting_funds(funds: pd.DataFrame) -> pd.Series:
    """harvest_loss_pct per fund (index fund_id) for the funds that harvest."""
    if "harvest_loss_pct" not in funds:
        return pd.Series(dtype="float64")
    pct = pd.to_numeric(funds.drop_duplicates("fund_id").set_index("fund_id")["harvest_loss_pct"], errors="coerce")
    return pct[pct.notna() & (pct >= 0)]


def plan_tax_trades(as_of: dt.date, funds: pd.DataFrame, drift: pd.DataFrame, nav_after_flow: pd.Series,
                    tax_lots: pd.DataFrame | None, prices: pd.DataFrame, securities: pd.DataFrame | None,
                    fx_rates: pd.DataFrame | None, substitutes: pd.DataFrame | None,
                    restrictions: pd.DataFrame | None, recent_buys: pd.DataFrame | None,
                    recent_loss_sales: pd.DataFrame | None, pairs: pd.DataFrame,
                    blocked: pd.Index) -> HarvestPlan:
    """Tonight's harvests and swap backs of the funds that harvest (not blocked ones)."""
    pct = harvesting_funds(funds)
    pct = pct[~pct.index.isin(blocked) & pct.index.isin(nav_after_flow.dropna().index)]
    if pct.empty or tax_lots is None or tax_lots.empty:
        return _empty_plan()
    fund_terms = funds.drop_duplicates("fund_id").set_index("fund_id")
    terms = _security_terms(prices, securities)
    recent = _recent_buys(as_of, tax_lots, recent_buys)
    forbidden_buy = _pairs_of(restrictions, (RULE_NO_BUY, RULE_EXCLUDE))
    forbidden_sell = _pairs_of(restrictions, (RULE_NO_SELL, RULE_EXCLUDE))
    loss_sold = _keys(recent_loss_sales)

    swaps = _swap_backs(as_of, pct.index, pairs, tax_lots, drift, terms, forbidden_buy, loss_sold, recent)
    harvests = _harvests(pct, fund_terms, tax_lots, drift, terms, substitutes, forbidden_buy, forbidden_sell,
                         loss_sold, recent, pairs, swaps)
    legs = pd.concat([f for f in (swaps, harvests) if len(f)], ignore_index=True) if len(swaps) or len(harvests) \
        else pd.DataFrame()
    if legs.empty:
        return _empty_plan()
    trades = _trade_rows(legs, drift, nav_after_flow, fund_terms, terms, fx_rates)
    hold = trades[KEY].drop_duplicates().assign(rule=RULE_HOLD)
    return HarvestPlan(trades, hold, pd.Index(trades["fund_id"].unique(), name="fund_id"))


# ------------------------------------------------------------------ harvests
def _harvests(pct, fund_terms, tax_lots, drift, terms, substitutes, forbidden_buy, forbidden_sell, loss_sold,
              recent, pairs, swaps) -> pd.DataFrame:
    lots = tax_lots[tax_lots["fund_id"].isin(pct.index) & (tax_lots["quantity"] > 0)]
    if lots.empty or substitutes is None or substitutes.empty:
        return pd.DataFrame()
    lots = lots.merge(drift[[*KEY, "price", "fx_rate", "quantity"]].rename(columns={"quantity": "held"}),
                      on=KEY, how="inner")
    lots = lots[lots["price"].notna() & lots["fx_rate"].notna()]
    lots = lots.assign(qualifies=lots["price"] <= lots["unit_cost"] * (1 - lots["fund_id"].map(pct)) + 1e-12)
    lots["loss"] = np.where(lots["qualifies"], lots["quantity"] * (lots["price"] - lots["unit_cost"]) * lots["fx_rate"],
                            0.0)
    lots["sell"] = np.where(lots["qualifies"], lots["quantity"], 0.0)
    by = lots.groupby(KEY)
    cand = pd.DataFrame({"loss": by["loss"].sum(), "sell": by["sell"].sum(),
                         "held": by["held"].first(), "price": by["price"].first(),
                         "fx_rate": by["fx_rate"].first()}).reset_index()
    min_loss = pd.to_numeric(cand["fund_id"].map(fund_terms.get("harvest_min_loss", pd.Series(dtype="float64"))),
                             errors="coerce").fillna(0.0).clip(lower=0.0)
    keys = pd.MultiIndex.from_frame(cand[KEY])
    busy = _keys(pd.concat([swaps[["fund_id", leg]].rename(columns={leg: "security_id"})
                            for leg in ("sell_id", "buy_id")]) if len(swaps) else None)
    standing_in = _keys(pairs[["fund_id", "substitute_id"]].rename(columns={"substitute_id": "security_id"})
                        if len(pairs) else None)
    tradable = cand["security_id"].map(terms["tradable"]).fillna(True).astype(bool)
    cand = cand[(cand["loss"] < 0) & (-cand["loss"] >= min_loss) & ~keys.isin(recent)
                & ~keys.isin(forbidden_sell) & ~keys.isin(busy) & ~keys.isin(standing_in) & tradable
                & (cand["held"] > 0)]
    if cand.empty:
        return pd.DataFrame()
    cand = cand.assign(sell=np.minimum(cand["sell"], cand["held"]))

    # The first substitute by rank the fund may buy without breaking a rule or washing a sale.
    options = cand[[*KEY, "loss", "sell", "price", "fx_rate"]].merge(
        substitutes.rename(columns={"substitute_id": "buy_id"})[["security_id", "buy_id", "rank"]], on="security_id")
    options = options[options["buy_id"] != options["security_id"]]
    buy_keys = pd.MultiIndex.from_arrays([options["fund_id"], options["buy_id"]])
    harvested_tonight = _keys(cand[KEY])
    ok = (options["buy_id"].isin(terms.index[terms["tradable"] & terms["price"].notna()])
          & ~buy_keys.isin(forbidden_buy) & ~buy_keys.isin(loss_sold) & ~buy_keys.isin(harvested_tonight)
          & ~buy_keys.isin(busy))
    options = options[ok].assign(rank=pd.to_numeric(options.loc[ok, "rank"], errors="coerce").fillna(np.inf))
    options = options.sort_values([*KEY, "rank", "buy_id"]).drop_duplicates(KEY)
    # Two harvests of a fund may not buy the same substitute tonight: the larger loss goes first.
    options = options.sort_values(["fund_id", "buy_id", "loss"]).drop_duplicates(["fund_id", "buy_id"])
    if options.empty:
        return pd.DataFrame()
    return pd.DataFrame({"fund_id": options["fund_id"].to_numpy(), "sell_id": options["security_id"].to_numpy(),
                         "sell_qty": options["sell"].to_numpy(dtype="float64"),
                         "buy_id": options["buy_id"].to_numpy(), "kind": "harvest",
                         "harvest_of": options["security_id"].to_numpy()})


# ------------------------------------------------------------------ swap backs
def _swap_backs(as_of, harvesting, pairs, tax_lots, drift, terms, forbidden_buy, loss_sold, recent) -> pd.DataFrame:
    if pairs.empty:
        return pd.DataFrame()
    due = pairs[pairs["fund_id"].isin(harvesting) & (
        (pd.Timestamp(as_of) - pd.to_datetime(pairs["harvested_on"])).dt.days >= SWAP_BACK_DAYS)]
    if due.empty:
        return pd.DataFrame()
    held = drift[[*KEY, "quantity", "price", "fx_rate"]]
    due = due.merge(held.rename(columns={"security_id": "substitute_id"}), on=["fund_id", "substitute_id"], how="inner")
    due = due[(due["quantity"] > 0) & due["price"].notna()]
    lots = tax_lots.rename(columns={"security_id": "substitute_id", "quantity": "lot_quantity"}).merge(
        due[["fund_id", "substitute_id", "price", "fx_rate"]], on=["fund_id", "substitute_id"], how="inner")
    age = (pd.Timestamp(as_of) - pd.to_datetime(lots["acquired_date"])).dt.days
    short_gain = (lots["lot_quantity"] * (lots["price"] - lots["unit_cost"]) * lots["fx_rate"]).where(
        age <= LONG_TERM_DAYS, 0.0).groupby([lots["fund_id"], lots["substitute_id"]]).sum()
    covered = lots.groupby(["fund_id", "substitute_id"])["lot_quantity"].sum()
    index = pd.MultiIndex.from_frame(due[["fund_id", "substitute_id"]])
    gain = short_gain.reindex(index).to_numpy()
    # Lots on file must cover the holding, or the gain of the sale is unknown: no swap.
    known = covered.reindex(index).fillna(0.0).to_numpy() >= due["quantity"].to_numpy() - 1e-9
    back_keys = pd.MultiIndex.from_frame(due[KEY])
    sub_keys = pd.MultiIndex.from_frame(due[["fund_id", "substitute_id"]].rename(
        columns={"substitute_id": "security_id"}))
    # The substitute bought again in the last 30 days: its sale might be washed; wait.
    may_buy = (due["security_id"].isin(terms.index[terms["tradable"] & terms["price"].notna()])
               & ~back_keys.isin(forbidden_buy) & ~back_keys.isin(loss_sold) & ~sub_keys.isin(recent))
    due = due[known & (np.nan_to_num(gain, nan=np.inf) <= 1e-9) & may_buy.to_numpy()]
    if due.empty:
        return pd.DataFrame()
    return pd.DataFrame({"fund_id": due["fund_id"].to_numpy(), "sell_id": due["substitute_id"].to_numpy(),
                         "sell_qty": due["quantity"].to_numpy(dtype="float64"),
                         "buy_id": due["security_id"].to_numpy(), "kind": "swap_back",
                         "harvest_of": due["security_id"].to_numpy()})


# ------------------------------------------------------------------ trades
def _trade_rows(legs: pd.DataFrame, drift: pd.DataFrame, nav: pd.Series, fund_terms: pd.DataFrame,
                terms: pd.DataFrame, fx_rates: pd.DataFrame | None) -> pd.DataFrame:
    """A sell and a buy per leg: the buy spends the sale's proceeds less both costs."""
    base = legs["fund_id"].map(fund_terms["base_currency"])
    sell = _leg_side(legs, "sell_id", legs["sell_qty"], base, drift, fund_terms, terms, fx_rates)
    proceeds = pd.Series(sell["notional"].to_numpy() - sell["est_cost"].to_numpy(), index=legs.index)
    buy_unit = _leg_unit(legs, "buy_id", base, terms, fx_rates)
    buy_qty = _buy_quantity(proceeds, buy_unit, legs, fund_terms, terms)
    keep = (buy_qty > QTY_EPS) & (legs["sell_qty"] > QTY_EPS)
    buy = _leg_side(legs, "buy_id", buy_qty, base, drift, fund_terms, terms, fx_rates)
    sell = sell.assign(side="SELL", harvest_of=np.where(legs["kind"] == "swap_back", legs["harvest_of"], None),
                       lot_rule=np.where(legs["kind"] == "harvest", "hifo", "all"))
    buy = buy.assign(side="BUY", harvest_of=np.where(legs["kind"] == "harvest", legs["harvest_of"], None),
                     lot_rule=None)
    out = pd.concat([sell[keep.to_numpy()], buy[keep.to_numpy()]], ignore_index=True)
    sign = np.where(out["side"] == "BUY", 1.0, -1.0)
    out["weight_after"] = out["weight_before"] + sign * out["notional"] / out["fund_id"].map(nav).to_numpy()
    out["reason"] = REASON_TAX
    out["est_realized_gain"] = np.nan
    return out[[c for c in TRADE_COLUMNS if c != "proposal_id"] + ["lot_rule"]]


def _leg_side(legs, column, qty, base, drift, fund_terms, terms, fx_rates) -> pd.DataFrame:
    security = legs[column]
    unit = _leg_unit(legs, column, base, terms, fx_rates)
    rows = _cost_rows(legs["fund_id"], security, fund_terms, terms)
    index = pd.MultiIndex.from_arrays([legs["fund_id"], security])
    state = drift.set_index(KEY)
    weight = state["current_weight"].reindex(index).fillna(0.0).to_numpy()
    target = state["target_weight"].reindex(index).fillna(0.0).to_numpy()
    qty = pd.Series(np.asarray(qty, dtype="float64"), index=legs.index)
    return pd.DataFrame({
        "fund_id": legs["fund_id"].to_numpy(), "security_id": security.to_numpy(), "quantity": qty.to_numpy(),
        "price": security.map(terms["price"]).to_numpy(dtype="float64"),
        "currency": security.map(terms["currency"]).to_numpy(),
        "notional": (qty * unit).to_numpy(), "weight_before": weight, "target_weight": target,
        "est_cost": trade_costs(qty, unit, rows).to_numpy(),
    })


def _leg_unit(legs, column, base, terms, fx_rates) -> pd.Series:
    security = legs[column]
    currency = security.map(terms["currency"])
    rate = fx_to_base(currency, base, fx_rates)
    return security.map(terms["price"]).astype("float64") * rate


def _buy_quantity(budget: pd.Series, unit: pd.Series, legs: pd.DataFrame, fund_terms: pd.DataFrame,
                  terms: pd.DataFrame) -> pd.Series:
    """The most the budget buys with its cost included, whole lots unless fractional."""
    rows = _cost_rows(legs["fund_id"], legs["buy_id"], fund_terms, terms)
    lot = legs["buy_id"].map(terms["lot_size"]).fillna(1.0)
    fractional = legs["fund_id"].map(fund_terms["allow_fractional"]).fillna(False).astype(bool)
    bps = (rows["commission_bps"].fillna(0.0) + rows["half_spread_bps"].fillna(0.0)) / 1e4
    qty = (budget / (unit * (1 + bps) + rows["commission_per_share"].fillna(0.0))).clip(lower=0.0).fillna(0.0)
    for _ in range(3):   # market impact grows with size: shrink until the cost fits
        spend = qty * unit + trade_costs(qty, unit, rows)
        qty = (qty * np.minimum(1.0, budget / spend.where(spend > 0))).fillna(0.0)
    whole = np.floor(qty / lot + QTY_EPS) * lot
    qty = qty.where(fractional, whole)
    for _ in range(3):   # whole lots: step down a lot while the spend exceeds the budget
        over = (qty * unit + trade_costs(qty, unit, rows)) > budget + 1e-9
        qty = qty.where(~over, (qty - np.where(fractional, qty * 1e-6, lot)).clip(lower=0.0))
    return qty


def _cost_rows(fund_id: pd.Series, security: pd.Series, fund_terms: pd.DataFrame, terms: pd.DataFrame) -> pd.DataFrame:
    def fund_column(name):
        return pd.to_numeric(fund_id.map(fund_terms[name]), errors="coerce") if name in fund_terms else np.nan
    return pd.DataFrame({
        "commission_bps": fund_column("commission_bps"),
        "commission_per_share": fund_column("commission_per_share"),
        "half_spread_bps": security.map(terms["half_spread_bps"]).astype("float64"),
        "adv": security.map(terms["adv"]).astype("float64"),
    }, index=fund_id.index)


def _security_terms(prices: pd.DataFrame, securities: pd.DataFrame | None) -> pd.DataFrame:
    px = prices.drop_duplicates("security_id").set_index("security_id")[["close_price", "currency"]].rename(
        columns={"close_price": "price"})
    if securities is not None and len(securities):
        sec = securities.drop_duplicates("security_id").set_index("security_id").reindex(
            columns=["lot_size", "tradable", "half_spread_bps", "adv"])
        terms = px.join(sec, how="outer")
    else:
        terms = px.assign(lot_size=np.nan, tradable=True, half_spread_bps=np.nan, adv=np.nan)
    terms["lot_size"] = pd.to_numeric(terms["lot_size"], errors="coerce").where(lambda s: s > 0).fillna(1.0)
    terms["tradable"] = terms["tradable"].astype("object").where(terms["tradable"].notna(), True).astype(bool)
    terms["half_spread_bps"] = pd.to_numeric(terms["half_spread_bps"], errors="coerce")
    terms["adv"] = pd.to_numeric(terms["adv"], errors="coerce")
    return terms


def _recent_buys(as_of: dt.date, tax_lots: pd.DataFrame | None, recent_buys: pd.DataFrame | None) -> pd.MultiIndex:
    """(fund, security) bought in the last 30 days: a lot acquired in the window, or an
    approved buy (executed or not)."""
    parts = []
    if tax_lots is not None and len(tax_lots):
        age = (pd.Timestamp(as_of) - pd.to_datetime(tax_lots["acquired_date"])).dt.days
        parts.append(tax_lots.loc[age.between(0, WASH_SALE_DAYS) & (tax_lots["quantity"] > 0), KEY])
    if recent_buys is not None and len(recent_buys):
        parts.append(recent_buys[KEY])
    return _keys(pd.concat(parts, ignore_index=True).drop_duplicates() if parts else None)


def _pairs_of(restrictions: pd.DataFrame | None, rules) -> pd.MultiIndex:
    if restrictions is None or restrictions.empty:
        return _keys(None)
    return rule_pairs(restrictions[restrictions["rule"].isin(rules)].assign(rule="any"), "any")


def _keys(frame: pd.DataFrame | None) -> pd.MultiIndex:
    if frame is None or len(frame) == 0:
        return pd.MultiIndex.from_arrays([[], []], names=KEY)
    return pd.MultiIndex.from_frame(frame[KEY].astype(object))


def _empty_plan() -> HarvestPlan:
    trades = pd.DataFrame({c: pd.Series(dtype="object") for c in [*TRADE_COLUMNS, "lot_rule"] if c != "proposal_id"})
    hold = pd.DataFrame({c: pd.Series(dtype="object") for c in [*KEY, "rule"]})
    return HarvestPlan(trades, hold, pd.Index([], name="fund_id"))


def wash_rules(as_of: dt.date, funds: pd.DataFrame, drift: pd.DataFrame, tax_lots: pd.DataFrame | None,
               recent_buys: pd.DataFrame | None, recent_loss_sales: pd.DataFrame | None) -> pd.DataFrame:
    """Rules that keep the funds avoiding wash sales (``wash_sale_rule`` ``avoid``, the
    default of a fund that harvests) from proposing one: no buy of a security sold at a loss
    in the last 30 days; no sale of a security bought in the last 30 days (a lot acquired in
    the window or an approved buy) while any of its lots is at a loss."""

    avoiding = avoiding_funds(funds)
    out = [pd.DataFrame({c: pd.Series(dtype="object") for c in [*KEY, "rule"]})]
    if avoiding.empty:
        return out[0]
    if recent_loss_sales is not None and len(recent_loss_sales):
        rows = recent_loss_sales[recent_loss_sales["fund_id"].isin(avoiding)][KEY]
        out.append(rows.assign(rule=RULE_WASH_NO_BUY))
    if tax_lots is not None and len(tax_lots):
        lots = tax_lots[tax_lots["fund_id"].isin(avoiding)]
        price = lots[KEY].merge(drift[[*KEY, "price"]].drop_duplicates(KEY), on=KEY, how="left")["price"].to_numpy()
        at_loss = lots.loc[lots["unit_cost"].to_numpy() > price, KEY].drop_duplicates()
        recent = _recent_buys(as_of, lots, recent_buys)
        out.append(at_loss[_keys(at_loss).isin(recent)].assign(rule=RULE_WASH_NO_SELL))
    return pd.concat(out, ignore_index=True).drop_duplicates()


def avoiding_funds(funds: pd.DataFrame) -> pd.Index:
    """Funds that never propose a wash sale: ``wash_sale_rule = avoid``, or empty and the
    fund harvests losses."""
    frame = funds.drop_duplicates("fund_id").set_index("fund_id")
    rule = (frame["wash_sale_rule"].astype("object").where(frame["wash_sale_rule"].notna(), "").astype(str)
            .str.strip().str.lower() if "wash_sale_rule" in frame else pd.Series("", index=frame.index))
    harvests = frame.index.isin(harvesting_funds(funds).index)
    return frame.index[(rule == "avoid") | ((rule == "") & harvests)]

