"""ETF primary market: creation and redemption baskets (the PCF), and the day's AP orders.

A fund with a ``creation_unit`` (funds.csv: shares per creation unit) and its shares
outstanding (fund_shares.csv) has a NAV per share (NAV / shares outstanding) and, every
night, a **basket** per creation unit for each direction (``creation``, ``redemption``):

- a pro-rata slice of its holdings (each held security's weight of NAV x NAV per share x
  creation_unit, in shares), in whole lots of the security's ``lot_size``: every quantity
  is rounded down to a lot, then lots are added back, largest remainders first, while they
  fit in what rounding left over, then lots of the cheapest security with room. So the
  securities are worth the pro-rata value less under one lot of the cheapest security, and
  a ``CASH`` row, the cash component, makes the basket worth exactly NAV per share x
  creation_unit;
- with ``custom_baskets`` (SEC Rule 6c-11) the weights lean toward the targets before that
  rounding: a creation basket takes w + k (t - w) of each holding (more of what is
  underweight, less of what is overweight), a redemption basket w + k (w - t) (more of what
  is overweight), with w the current and t the target weight, k = ``CUSTOM_BASKET_TILT``
  (1: a creation basket holds the target weights, a redemption basket the holdings'
  mirror image across them), negatives cut to 0 and the weights rescaled to the holdings'
  share of NAV. So primary-market flows move the fund toward its targets without trading;
- never outside the holdings: only held securities, and no quantity above what the fund
  holds (nor, where it has tax lots on file for the security, above its lots).

The day's orders (creations.csv: units > 0 creation, < 0 redemption) settle against the
holdings at the day's close as the files give them, i.e. before the day's AP orders settle
in kind, with the basket computed from those holdings (the same basket is published for
the next business day):

- ``cash`` orders are flows (units x creation_unit x NAV per share), invested or raised by
  the rebalance like any flow (flows.csv);
- ``in_kind`` redemptions deliver units x the redemption basket out of the fund (never more
  than it holds: a shortfall is paid in cash), closing the **lowest-cost open lots first**
  (IRC 852(b)(6): an in-kind delivery realizes no gain for the fund, so its low-basis lots
  leave untaxed); the unrealized gain that left is reported, no gain is realized; the
  cash component is paid out;
- ``in_kind`` creations bring units x the creation basket in as new lots at the day's close
  (lot id ``INKIND-YYYYMMDD``, acquired on the date) and the cash component in.

Every lot that moves is an ``in_kind_lot`` row (``delivered`` or ``received``). The night's
drift and proposals start from the settled book. Vectorized: groupbys over all funds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from rebalance_core.drift import compute_drift, summarize_funds
from rebalance_core.index_events import flag
from rebalance_core.models import isin_ids
from rebalance_core.schema import (
    BASKET_CREATION,
    BASKET_REDEMPTION,
    CASH,
    IN_KIND_DELIVERED,
    IN_KIND_RECEIVED,
    SETTLEMENT_CASH,
    SETTLEMENT_IN_KIND,
)

BASKET_COLUMNS = ["as_of_date", "fund_id", "kind", "security_id", "quantity", "est_value"]
IN_KIND_LOT_COLUMNS = ["as_of_date", "fund_id", "security_id", "lot_id", "quantity", "unit_cost", "acquired_date",
                       "kind", "unrealized_gain"]
# How far a custom basket leans from the holdings' weights toward the targets (see above).
CUSTOM_BASKET_TILT = 1.0
QTY_EPS = 1e-9


@dataclass(frozen=True)
class PrimaryMarket:
    """The book once the day's in-kind orders settled, and what the primary market produced."""

    positions: pd.DataFrame
    cash: pd.DataFrame
    tax_lots: pd.DataFrame | None
    flows: pd.DataFrame | None          # flows.csv plus the cash orders (fund_id, amount)
    baskets: pd.DataFrame               # BASKET_COLUMNS
    in_kind_lots: pd.DataFrame          # IN_KIND_LOT_COLUMNS
    in_kind_gain: pd.Series             # per fund: unrealized gain delivered out in kind (NaN: lots unknown)
    nav_per_share: pd.Series            # per fund with a creation unit and shares outstanding


def empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def etf_terms(funds: pd.DataFrame, fund_shares: pd.DataFrame | None) -> pd.DataFrame:
    """creation_unit, custom (bool) and shares_outstanding per fund that can have a basket."""
    columns = ["creation_unit", "custom", "shares_outstanding"]
    if "creation_unit" not in funds or fund_shares is None or fund_shares.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="fund_id"))
    rows = funds.drop_duplicates("fund_id").set_index("fund_id")
    unit = pd.to_numeric(rows["creation_unit"], errors="coerce")
    shares = pd.to_numeric(fund_shares.drop_duplicates("fund_id").set_index("fund_id")["shares_outstanding"],
                           errors="coerce")
    terms = pd.DataFrame({"creation_unit": unit, "custom": flag(funds, "custom_baskets").reindex(rows.index),
                          "shares_outstanding": shares.reindex(rows.index)})
    return terms[(terms["creation_unit"] > 0) & (terms["shares_outstanding"] > 0)]


def build_baskets(as_of: dt.date, holdings: pd.DataFrame, unit_nav: pd.Series, custom: pd.Series,
                  lot_size: pd.Series | None = None, lot_totals: pd.DataFrame | None = None) -> pd.DataFrame:
    """Both baskets of each fund per creation unit (BASKET_COLUMNS, a CASH row each).

    ``holdings``: fund_id, security_id, quantity, unit_value (price x fx, base currency),
    current_weight, target_weight (NaN: none); ``unit_nav``: NAV per share x creation_unit
    per fund; ``custom``: custom_baskets per fund; ``lot_size`` per security (default 1);
    ``lot_totals``: fund_id, security_id, quantity of the open tax lots on file."""
    held = holdings[(holdings["quantity"] > QTY_EPS) & (holdings["unit_value"] > 0)
                    & holdings["fund_id"].isin(unit_nav.index)].copy()
    if held.empty:
        return empty(BASKET_COLUMNS)
    held["target_weight"] = held["target_weight"].fillna(0.0)
    held["lot"] = (held["security_id"].map(lot_size) if lot_size is not None else pd.Series(np.nan, held.index))
    held["lot"] = pd.to_numeric(held["lot"], errors="coerce").where(lambda v: v > 0).fillna(1.0)
    cap = held["quantity"]
    if lot_totals is not None and len(lot_totals):
        lots = lot_totals.groupby(["fund_id", "security_id"])["quantity"].sum()
        on_file = pd.Series(lots.reindex(pd.MultiIndex.from_frame(held[["fund_id", "security_id"]])).to_numpy(),
                            index=held.index)
        cap = np.minimum(cap, on_file.fillna(np.inf))
    held["cap"] = np.floor(cap / held["lot"] + QTY_EPS) * held["lot"]

    w = held["current_weight"]
    t = held["target_weight"]
    lean = held["fund_id"].map(custom).fillna(False).astype(bool)
    parts = []
    for kind, tilted in ((BASKET_CREATION, w + CUSTOM_BASKET_TILT * (t - w)),
                         (BASKET_REDEMPTION, w + CUSTOM_BASKET_TILT * (w - t))):
        weight = np.where(lean, tilted.clip(lower=0.0), w)
        weight = pd.Series(weight, index=held.index)
        total = weight.groupby(held["fund_id"]).transform("sum")
        share = w.groupby(held["fund_id"]).transform("sum")
        # Rescaled to the holdings' share of NAV; nothing left to lean on: pro rata.
        weight = (weight * share / total.where(total > 0)).fillna(w)
        parts.append(held.assign(kind=kind, weight=weight))
    rows = pd.concat(parts, ignore_index=True)
    rows["group"] = rows["fund_id"] + "\x00" + rows["kind"]
    rows["lot_value"] = rows["lot"] * rows["unit_value"]
    raw = rows["weight"] * rows["fund_id"].map(unit_nav).astype("float64") / rows["unit_value"]
    lots_raw = raw / rows["lot"]
    floor_lots = np.floor(lots_raw + QTY_EPS)
    quantity = np.minimum(floor_lots * rows["lot"], rows["cap"])
    deficit = ((raw - quantity) * rows["unit_value"]).groupby(rows["group"]).transform("sum")

    # Lots back, largest remainders first, while they fit in what rounding left over.
    remainder = (lots_raw - floor_lots).where(rows["cap"] - quantity >= rows["lot"] - QTY_EPS, -1.0)
    order = rows.assign(remainder=remainder).sort_values(["group", "remainder", "security_id"],
                                                         ascending=[True, False, True])
    cumulative = order["lot_value"].where(order["remainder"] >= 0, 0.0).groupby(order["group"]).cumsum()
    add = (order["remainder"] >= 0) & (cumulative <= order.index.map(deficit).to_numpy() + 1e-9)
    quantity = quantity + (add.reindex(rows.index).fillna(False) * rows["lot"])
    left = deficit - (add.reindex(rows.index).fillna(False) * rows["lot_value"]).groupby(rows["group"]).transform(
        "sum")

    # Then lots of the cheapest security with room, as many as still fit.
    room_lots = np.floor((rows["cap"] - quantity) / rows["lot"] + QTY_EPS)
    with_room = rows["lot_value"].where(room_lots >= 1)
    cheapest = with_room.groupby(rows["group"]).transform("min")
    pick = with_room.eq(cheapest) & with_room.notna()
    pick &= ~pick.groupby(rows["group"]).cumsum().gt(1)   # one security per basket
    extra = np.minimum(np.floor(left / rows["lot_value"] + QTY_EPS), room_lots).clip(lower=0.0)
    quantity = quantity + np.where(pick, extra * rows["lot"], 0.0)

    rows["quantity"] = quantity
    rows["est_value"] = quantity * rows["unit_value"]
    securities = rows[rows["quantity"] > QTY_EPS]
    value = securities.groupby(["fund_id", "kind"])["est_value"].sum()
    keys = pd.MultiIndex.from_product([unit_nav.index[unit_nav.index.isin(held["fund_id"])],
                                       [BASKET_CREATION, BASKET_REDEMPTION]], names=["fund_id", "kind"])
    cash_component = keys.get_level_values("fund_id").map(unit_nav).to_numpy() - value.reindex(keys).fillna(
        0.0).to_numpy()
    cash_rows = pd.DataFrame({"fund_id": keys.get_level_values("fund_id"), "kind": keys.get_level_values("kind"),
                              "security_id": CASH, "quantity": cash_component, "est_value": cash_component})
    out = pd.concat([securities[["fund_id", "kind", "security_id", "quantity", "est_value"]], cash_rows],
                    ignore_index=True)
    out["as_of_date"] = as_of
    return out.sort_values(["fund_id", "kind", "security_id"], ignore_index=True)[BASKET_COLUMNS]


def lowest_cost_lots(wanted: pd.DataFrame, tax_lots: pd.DataFrame) -> pd.DataFrame:
    """The open lots that deliver ``wanted`` (fund_id, security_id, quantity): lowest unit
    cost first (then lot id), each lot at most its quantity. Returns the lots' rows with the
    quantity each delivers."""
    lots = tax_lots[["fund_id", "security_id", "lot_id", "quantity", "unit_cost", "acquired_date"]].merge(
        wanted.rename(columns={"quantity": "wanted"}), on=["fund_id", "security_id"], how="inner")
    lots = lots[lots["quantity"] > QTY_EPS]
    if lots.empty:
        return lots.assign(delivered=pd.Series(dtype="float64"))
    lots = lots.sort_values(["fund_id", "security_id", "unit_cost", "lot_id"], kind="stable")
    before = lots.groupby(["fund_id", "security_id"])["quantity"].cumsum() - lots["quantity"]
    lots["delivered"] = np.clip(lots["wanted"] - before, 0.0, lots["quantity"])
    return lots[lots["delivered"] > QTY_EPS]


@dataclass(frozen=True)
class _Settlement:
    """What the day's in-kind orders settle against: the book as the files give it, each
    ETF's baskets, and the units created and redeemed in kind per fund."""

    as_of: dt.date
    holdings: pd.DataFrame              # drift rows of the ETFs' securities, with unit_value
    baskets: pd.DataFrame               # BASKET_COLUMNS
    tax_lots: pd.DataFrame | None
    lot_totals: pd.DataFrame | None     # the ETFs' lots on file (None: no lots)
    created: pd.Series                  # units created in kind, per fund (> 0)
    redeemed: pd.Series                 # units redeemed in kind, per fund (> 0)

    @property
    def security_rows(self) -> pd.Series:
        return self.baskets["security_id"] != CASH

    @cached_property
    def book(self) -> pd.DataFrame:
        """Price, fx, unit value and quantity per (fund, security) held."""
        return self.holdings.drop_duplicates(["fund_id", "security_id"]).set_index(["fund_id", "security_id"])


def settle_primary_market(as_of: dt.date, funds: pd.DataFrame, targets: pd.DataFrame, positions: pd.DataFrame,
                          prices: pd.DataFrame, cash: pd.DataFrame, fx_rates: pd.DataFrame | None,
                          securities: pd.DataFrame | None, tax_lots: pd.DataFrame | None,
                          flows: pd.DataFrame | None, creations: pd.DataFrame | None,
                          fund_shares: pd.DataFrame | None, blocked_ids=()) -> PrimaryMarket:
    """Baskets of every fund with a creation unit, and the day's AP orders settled (see above).

    Funds blocked by validation get no basket and settle nothing (their night is blocked).
    The steps: the baskets, the cash orders as flows, the in-kind creations received, the
    in-kind redemptions delivered (lowest-cost lots), then the settled positions, cash and lots."""
    terms = etf_terms(funds, fund_shares)
    terms = terms[~terms.index.isin(pd.Index(blocked_ids))]
    nothing = PrimaryMarket(positions, cash, tax_lots, flows, empty(BASKET_COLUMNS), empty(IN_KIND_LOT_COLUMNS),
                            pd.Series(dtype="float64"), pd.Series(dtype="float64"))
    if terms.empty:
        return nothing
    ids = terms.index
    sub = funds[isin_ids(funds["fund_id"], ids)].drop_duplicates("fund_id")
    # A few ETFs in a large book: select their rows by Arrow's hash set (pandas' isin on
    # Arrow strings converts each value in Python).
    drift = compute_drift(as_of, sub, targets[isin_ids(targets["fund_id"], ids)],
                          positions[isin_ids(positions["fund_id"], ids)], prices,
                          cash[isin_ids(cash["fund_id"], ids)], fx_rates, securities=securities)
    nav = summarize_funds(drift).set_index("fund_id")["nav"].reindex(ids)
    nav_per_share = (nav / terms["shares_outstanding"]).dropna()
    if nav_per_share.empty:
        return nothing
    unit_nav = nav_per_share * terms["creation_unit"].reindex(nav_per_share.index)
    holdings = drift[drift["security_id"] != CASH].assign(unit_value=lambda f: f["price"] * f["fx_rate"])
    lot_size = (securities.drop_duplicates("security_id").set_index("security_id")["lot_size"]
                if securities is not None and len(securities) and "lot_size" in securities else None)
    lot_totals = tax_lots[tax_lots["fund_id"].isin(nav_per_share.index)] if tax_lots is not None else None
    baskets = build_baskets(as_of, holdings, unit_nav, terms["custom"], lot_size, lot_totals)

    orders = _orders(creations, nav_per_share.index)
    flows = _with_cash_orders(orders, unit_nav, flows) if len(orders) else flows
    in_kind = orders[orders["settlement"] == SETTLEMENT_IN_KIND]
    created = in_kind["units"].clip(lower=0.0).groupby(in_kind["fund_id"]).sum()
    redeemed = (-in_kind["units"]).clip(lower=0.0).groupby(in_kind["fund_id"]).sum()
    created, redeemed = created[created > 0], redeemed[redeemed > 0]
    if created.empty and redeemed.empty:
        return PrimaryMarket(positions, cash, tax_lots, flows, baskets, empty(IN_KIND_LOT_COLUMNS),
                             pd.Series(dtype="float64"), nav_per_share)
    day = _Settlement(as_of, holdings, baskets, tax_lots, lot_totals, created, redeemed)
    received = _received_lots(day)
    sent, shortfall = _redemption_deliveries(day)
    delivered, gain = _delivered_lots(day, sent)
    moves = pd.concat([received[["fund_id", "security_id", "quantity"]].reset_index(drop=True),
                       sent.assign(quantity=-sent["quantity"])], ignore_index=True)
    in_kind_lots = pd.concat([f for f in (delivered, received) if len(f)], ignore_index=True) if (
        len(delivered) or len(received)) else empty(IN_KIND_LOT_COLUMNS)
    return PrimaryMarket(_moved_positions(positions, moves), _settled_cash(day, funds, cash, shortfall),
                         _settled_lots(tax_lots, delivered, received), flows, baskets,
                         in_kind_lots[IN_KIND_LOT_COLUMNS], gain, nav_per_share)


def _with_cash_orders(orders: pd.DataFrame, unit_nav: pd.Series, flows: pd.DataFrame | None) -> pd.DataFrame | None:
    """Cash orders: flows in base currency (units x creation unit x NAV per share)."""
    by_cash = orders[orders["settlement"] == SETTLEMENT_CASH].groupby("fund_id")["units"].sum()
    cash_flows = pd.DataFrame({"fund_id": by_cash.index,
                               "amount": (by_cash * unit_nav.reindex(by_cash.index)).to_numpy()})
    parts = [f for f in (flows, cash_flows) if f is not None and len(f)]
    return pd.concat([f[["fund_id", "amount"]] for f in parts], ignore_index=True) if parts else flows


def _received_lots(day: _Settlement) -> pd.DataFrame:
    """Creations: the creation basket times the units comes in, as new lots at today's close."""
    baskets, created, as_of = day.baskets, day.created, day.as_of
    incoming = baskets[day.security_rows & (baskets["kind"] == BASKET_CREATION) & baskets["fund_id"].isin(created.index)]
    incoming = incoming.assign(quantity=incoming["quantity"] * incoming["fund_id"].map(created).astype("float64"))
    key_in = pd.MultiIndex.from_frame(incoming[["fund_id", "security_id"]])
    return pd.DataFrame({
        "as_of_date": as_of, "fund_id": incoming["fund_id"].to_numpy(), "security_id": incoming["security_id"].to_numpy(),
        "lot_id": f"INKIND-{as_of:%Y%m%d}", "quantity": incoming["quantity"].to_numpy(),
        "unit_cost": day.book["price"].reindex(key_in).to_numpy(), "acquired_date": as_of, "kind": IN_KIND_RECEIVED,
        "unrealized_gain": 0.0})


def _redemption_deliveries(day: _Settlement) -> tuple[pd.DataFrame, pd.Series]:
    """Redemptions: the redemption basket times the units goes out, never more than is held
    (nor than the lots on file); (fund_id, security_id, quantity sent; per fund, the
    shortfall paid in cash at today's value)."""
    baskets, redeemed, price = day.baskets, day.redeemed, day.book
    outgoing = baskets[day.security_rows & (baskets["kind"] == BASKET_REDEMPTION)
                       & baskets["fund_id"].isin(redeemed.index)]
    wanted = outgoing["quantity"] * outgoing["fund_id"].map(redeemed).astype("float64")
    key_out = pd.MultiIndex.from_frame(outgoing[["fund_id", "security_id"]])
    cap = pd.Series(price["quantity"].reindex(key_out).to_numpy(), index=outgoing.index)
    if day.lot_totals is not None and len(day.lot_totals):
        on_file = day.lot_totals.groupby(["fund_id", "security_id"])["quantity"].sum().reindex(key_out)
        cap = np.minimum(cap, pd.Series(on_file.to_numpy(), index=outgoing.index).fillna(np.inf))
    sent = np.minimum(wanted, cap)
    unit_value = pd.Series(price["unit_value"].reindex(key_out).to_numpy(), index=outgoing.index)
    shortfall = ((wanted - sent) * unit_value).groupby(outgoing["fund_id"]).sum()
    sent = pd.DataFrame({"fund_id": outgoing["fund_id"], "security_id": outgoing["security_id"], "quantity": sent})
    return sent[sent["quantity"] > QTY_EPS], shortfall


def _delivered_lots(day: _Settlement, sent: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The lots the deliveries close, lowest cost first, with the unrealized gain that left;
    per redeeming fund that gain, unknown (NaN) where the lots on file do not cover it."""
    tax_lots, price = day.tax_lots, day.book
    delivered_lots = lowest_cost_lots(sent, tax_lots) if tax_lots is not None and len(tax_lots) else pd.DataFrame()
    if len(delivered_lots):
        key_lots = pd.MultiIndex.from_frame(delivered_lots[["fund_id", "security_id"]])
        delivered = pd.DataFrame({
            "as_of_date": day.as_of, "fund_id": delivered_lots["fund_id"].to_numpy(),
            "security_id": delivered_lots["security_id"].to_numpy(), "lot_id": delivered_lots["lot_id"].to_numpy(),
            "quantity": delivered_lots["delivered"].to_numpy(), "unit_cost": delivered_lots["unit_cost"].to_numpy(),
            "acquired_date": delivered_lots["acquired_date"].to_numpy(), "kind": IN_KIND_DELIVERED})
        delivered["unrealized_gain"] = (delivered["quantity"] * (price["price"].reindex(key_lots).to_numpy()
                                                                  - delivered["unit_cost"])
                                        * price["fx_rate"].reindex(key_lots).to_numpy())
    else:
        delivered = empty(IN_KIND_LOT_COLUMNS)
    covered = (delivered.groupby(["fund_id", "security_id"])["quantity"].sum() if len(delivered)
               else pd.Series(dtype="float64"))
    need = sent.set_index(["fund_id", "security_id"])["quantity"]
    uncovered = (need - covered.reindex(need.index).fillna(0.0)) > 1e-6
    gain = (delivered.groupby("fund_id")["unrealized_gain"].sum() if len(delivered) else pd.Series(dtype="float64"))
    gain = gain.reindex(day.redeemed.index)
    gain[uncovered.groupby(level="fund_id").any().reindex(day.redeemed.index).fillna(False).to_numpy(dtype=bool)] = np.nan
    return delivered, gain


def _moved_positions(positions: pd.DataFrame, moves: pd.DataFrame) -> pd.DataFrame:
    positions = pd.concat([positions[["fund_id", "security_id", "quantity"]], moves], ignore_index=True)
    positions = positions.groupby(["fund_id", "security_id"], as_index=False, sort=False)["quantity"].sum()
    return positions[positions["quantity"].abs() > QTY_EPS].reset_index(drop=True)


def _settled_cash(day: _Settlement, funds: pd.DataFrame, cash: pd.DataFrame, shortfall: pd.Series) -> pd.DataFrame:
    """The cash components in and out (and a redemption's shortfall out), in base currency."""
    created, redeemed = day.created, day.redeemed
    cash_component = day.baskets[~day.security_rows].set_index(["fund_id", "kind"])["quantity"]
    cash_in = (created * cash_component.xs(BASKET_CREATION, level="kind").reindex(created.index)).fillna(0.0)
    cash_out = (redeemed * cash_component.xs(BASKET_REDEMPTION, level="kind").reindex(redeemed.index)).fillna(0.0)
    cash_out = cash_out.add(shortfall, fill_value=0.0)
    delta = cash_in.add(-cash_out, fill_value=0.0)
    base = funds.drop_duplicates("fund_id").set_index("fund_id")["base_currency"]
    cash = pd.concat([cash[["fund_id", "currency", "amount"]],
                      pd.DataFrame({"fund_id": delta.index, "currency": delta.index.map(base), "amount": delta.to_numpy()})],
                     ignore_index=True)
    return cash.groupby(["fund_id", "currency"], as_index=False, sort=False, dropna=False)["amount"].sum()


def _settled_lots(tax_lots: pd.DataFrame | None, delivered: pd.DataFrame, received: pd.DataFrame):
    """Delivered lots reduced or closed; received lots added for funds that keep lots on file."""
    if tax_lots is None:
        return None
    lot_key = ["fund_id", "security_id", "lot_id"]
    tax_lots = tax_lots.copy()
    if len(delivered):
        out = delivered.groupby(lot_key)["quantity"].sum().rename("_out")
        tax_lots = tax_lots.join(out, on=lot_key)
        tax_lots["quantity"] = tax_lots["quantity"] - tax_lots["_out"].fillna(0.0)
        tax_lots = tax_lots.drop(columns="_out")
        tax_lots = tax_lots[tax_lots["quantity"] > QTY_EPS]
    new = received[received["fund_id"].isin(tax_lots["fund_id"])]
    if len(new):
        tax_lots = pd.concat([tax_lots, new[["fund_id", "security_id", "lot_id", "quantity", "unit_cost",
                                             "acquired_date"]]], ignore_index=True)
    return tax_lots.reset_index(drop=True)


def _orders(creations: pd.DataFrame | None, fund_ids: pd.Index) -> pd.DataFrame:
    """The day's AP orders of funds that can settle them: fund_id, units, settlement."""
    if creations is None or creations.empty:
        return pd.DataFrame({"fund_id": pd.Series(dtype="object"), "units": pd.Series(dtype="float64"),
                             "settlement": pd.Series(dtype="object")})
    orders = creations[creations["fund_id"].isin(fund_ids)]
    settlement = orders["settlement"].astype("object").where(orders["settlement"].notna(), "").astype(str)
    return pd.DataFrame({"fund_id": orders["fund_id"].to_numpy(),
                         "units": pd.to_numeric(orders["units"], errors="coerce").fillna(0.0).to_numpy(),
                         "settlement": settlement.str.strip().str.lower().to_numpy()})
