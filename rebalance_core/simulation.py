"""Policy what-if: replay a history of prices, executing every proposal as if approved.

Each date runs ``rebalance_core.night.decide_night``, the very function of the nightly run,
on the simulated book (positions, cash and tax lots carried from the day before) with that
day's prices, fx rates, flows and reference data, and the funds the day's checks block. Its
trades are executed at that day's close in the fund's base currency, costs are paid from
cash, the day's flows settle into cash, sold tax lots are closed and bought shares open new
ones. Reference files merge by key into the data in force (``inputs.merge_reference``, the
night's rule) and each day's ``NightInputs`` is built by ``inputs.night_inputs``, the nightly
shard's builder, with index levels, the price history and the funds' earlier tracking rows,
so every trigger of the night (``tracking`` included) can fire in a replay.

Per fund we count rebalances and add up turnover, costs and realized gains. Returns are
time-weighted (``time_weighted_returns``): a subscription or redemption is not performance;
a cash flow of a day settles after its close (it is capital the next day starts with), an
in-kind creation or redemption is taken out of the day's end value. The
*tracking difference* is the fund's time-weighted return less that of a costless fund held
exactly on its targets every day (in base currency, fx moves included); harvested losses
(``est_harvested_loss``) and trades are counted per fund and day, so harvest thresholds can
be compared over a year of prices.

Data is injected: ``load_day(date)`` returns that date's frames (prices, optional fx_rates
and flows, and any reference files that changed), and ``check_day(date, inputs)`` (optional)
returns the funds the day's validation blocks, so the replay knows nothing of files,
databases or Great Expectations. The loop is over dates; each day is vectorized.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from rebalance_core.harvest_pairs import PAIR_COLUMNS, open_harvests
from rebalance_core.inputs import INPUTS, merge_reference, night_inputs
from rebalance_core.night import NightInputs, decide_night
from rebalance_core.schema import CASH, REASON_TAX, SETTLEMENT_IN_KIND, WASH_SALE_DAYS
from rebalance_core.tax_lots import recent_loss_sales
from rebalance_core.tracking import (
    COVARIANCE_RETURNS,
    HISTORY_COLUMNS,
    PRICE_HISTORY_COLUMNS,
    REALIZED_WINDOWS,
)

# Reference data merged day by day (model versions are kept as a dated history instead).
REFERENCE = ("funds", "targets", "securities", "asset_classes", "models", "restrictions", "substitutes")
# The day's own files, from the input registry: all daily ones but the book (positions, cash
# and lots, which the replay carries) and the desk's executions (the replay executes every
# proposal as proposed).
DAILY = tuple(f.stem for f in INPUTS if not f.reference and f.stem not in ("positions", "cash", "tax_lots",
                                                                           "executions"))
NO_TARGETS = pd.DataFrame({"fund_id": pd.Series(dtype=object), "security_id": pd.Series(dtype=object),
                           "target_weight": pd.Series(dtype="float64")})


@dataclass
class SimulationResult:
    summary: pd.DataFrame   # one row per fund
    daily: pd.DataFrame     # one row per fund and date: nav, target_nav, rebalanced, turnover, cost
    trades: pd.DataFrame    # every executed trade, with its as_of_date
    proposals: pd.DataFrame  # every proposal, with its as_of_date


def simulate(dates: list[dt.date], load_day: Callable[[dt.date], dict[str, pd.DataFrame]],
             positions: pd.DataFrame, cash: pd.DataFrame, tax_lots: pd.DataFrame | None = None,
             check_day: Callable[[dt.date, NightInputs], pd.DataFrame] | None = None,
             model_history: pd.DataFrame | None = None,
             previous_state: pd.DataFrame | None = None,
             price_history: pd.DataFrame | None = None) -> SimulationResult:
    """Replay ``dates`` from the book (positions, cash, tax lots) held at the first date's close.

    ``load_day(date)``: the date's daily files by stem (prices, fx_rates, flows, index_levels,
    fund_shares, creations) and the reference files of its folder, each merged by key into
    the reference data in force (``rebalance_core.inputs.merge_reference``, the night's rule).
    ``model_history``: model versions known before the first date (valid_from, optional
    effective_date); a day's ``model_targets`` frame adds a version dated that day.
    ``previous_state``: the funds' state (``rebalance_core.fund_state``) of the business date
    before the first (e.g. ``fund_state.seed_state`` of its targets); then each day carries
    the day before's, as the nightly run does, so a target change triggers ``model_change``.
    ``price_history``: closes (as_of_date, security_id, close_price) of the dates before the
    first; each replayed day's prices join it, so the ex-ante tracking error (and the
    ``tracking`` trigger) is computed as the night computes it from the warehouse."""
    positions = positions.groupby(["fund_id", "security_id"], as_index=False)["quantity"].sum()
    cash = cash[["fund_id", "currency", "amount"]].copy()
    lots = tax_lots.copy() if tax_lots is not None and len(tax_lots) else None
    reference: dict[str, pd.DataFrame] = {}
    # Executed sells (the loss sales among them: tax_lots.recent_loss_sales) and buys, by date.
    loss_sales = pd.DataFrame({"fund_id": pd.Series(dtype=object), "security_id": pd.Series(dtype=object),
                               "side": pd.Series(dtype=object), "est_realized_gain": pd.Series(dtype="float64"),
                               "as_of_date": pd.Series(dtype=object)})
    buys = loss_sales[["fund_id", "security_id", "as_of_date"]].copy()
    pairs = pd.DataFrame({c: pd.Series(dtype="object") for c in PAIR_COLUMNS})   # harvests not swapped back
    closes = _price_frame(price_history)
    tracked = pd.DataFrame({c: pd.Series(dtype="object") for c in HISTORY_COLUMNS})   # earlier fund_tracking rows
    held_yesterday: pd.DataFrame | None = None   # fund, security, target weight, unit value in base
    target_nav: pd.Series | None = None
    records, all_trades, all_proposals = [], [], []
    for as_of in dates:
        frames = load_day(as_of)
        for stem in REFERENCE:
            if stem in frames:
                reference[stem] = merge_reference(stem, reference.get(stem), frames[stem])
        if frames.get("model_targets") is not None:
            today = frames["model_targets"].assign(valid_from=pd.Timestamp(as_of))
            model_history = (today if model_history is None or model_history.empty else pd.concat(
                [model_history[pd.to_datetime(model_history["valid_from"]) != pd.Timestamp(as_of)], today],
                ignore_index=True))
        recent_buys = buys[pd.to_datetime(buys["as_of_date"]).dt.date >= as_of - dt.timedelta(days=WASH_SALE_DAYS)]
        files = {**reference, "targets": reference.get("targets", NO_TARGETS), "positions": positions, "cash": cash,
                 "tax_lots": lots, **{stem: frames.get(stem) for stem in DAILY}}
        carried = {"recent_loss_sales": recent_loss_sales(loss_sales, as_of), "model_targets": model_history,
                   "previous_state": previous_state, "recent_buys": recent_buys[["fund_id", "security_id"]],
                   "open_harvests": pairs, "tracking_history": _latest_rows(tracked),
                   "price_history": _last_sessions(closes, as_of)}
        inputs = night_inputs(files, carried)
        if check_day is not None:
            inputs = replace(inputs, blocked=check_day(as_of, inputs))
        decision = decide_night(as_of, inputs)
        # The day's in-kind creations and redemptions settled before the decision: go on from
        # that book; cash creations and redemptions arrive as flows with the day's others.
        # Both histories keep only what the next day's window reads (the last COVARIANCE_RETURNS
        # dates; each fund's latest tracking rows), so a day's cost does not grow with the year.
        closes = _keep_last_sessions(pd.concat(
            [closes, _price_frame(frames["prices"].assign(as_of_date=pd.Timestamp(as_of)))], ignore_index=True))
        if decision.tracking is not None and len(decision.tracking):
            tracked = _latest_rows(pd.concat([tracked, decision.tracking[HISTORY_COLUMNS]], ignore_index=True))
        positions = decision.settled.positions.groupby(["fund_id", "security_id"], as_index=False)["quantity"].sum()
        cash = decision.settled.cash[["fund_id", "currency", "amount"]]
        lots = decision.settled.tax_lots
        day_flows = decision.settled.flows
        # Tomorrow starts from today's fund state, as the next nightly run does.
        previous_state = decision.fund_state
        drift, proposals, trades = decision.drift, decision.proposals, decision.trades
        # Funds only named by a fault (positions of a fund not in funds.csv) have no book here.
        # (.unique(): isin over a long Arrow string column is slow in pandas.)
        summary = decision.summary[decision.summary["fund_id"].isin(drift["fund_id"].unique())]
        nav = summary.set_index("fund_id")["nav"]

        # The costless always-on-target fund: yesterday's NAV grown by yesterday's target mix.
        target_nav, held_yesterday = _grow_target_nav(target_nav, held_yesterday, drift, nav)

        gains = pd.Series(0.0, index=nav.index)
        if len(trades):
            if lots is not None:
                lots = _roll_lots(lots, decision.lots, trades, as_of)
                gains = trades.groupby("fund_id")["est_realized_gain"].sum(min_count=1).reindex(nav.index).fillna(0.0)
                sells = trades.loc[trades["side"] == "SELL", ["fund_id", "security_id", "side", "est_realized_gain"]]
                loss_sales = pd.concat([loss_sales, sells.assign(as_of_date=as_of)], ignore_index=True)
            bought = trades.loc[trades["side"] == "BUY", ["fund_id", "security_id"]]
            buys = pd.concat([buys, bought.assign(as_of_date=as_of)], ignore_index=True)
            pairs = _roll_pairs(pairs, trades, as_of)
            positions = _execute(positions, trades)
            cash = _pay(cash, trades, reference["funds"])
            all_trades.append(trades.assign(as_of_date=as_of))
            all_proposals.append(proposals)
        cash = _settle_flows(cash, day_flows, reference["funds"])
        records.append(_day_record(as_of, summary, nav, target_nav, proposals, gains, day_flows,
                                   _in_kind_flow(inputs.creations, reference["funds"],
                                                 decision.settled.nav_per_share, nav.index)))
    daily = pd.concat(records, ignore_index=True)
    daily["daily_return"] = time_weighted_returns(daily)
    trades = pd.concat(all_trades, ignore_index=True) if all_trades else pd.DataFrame()
    proposals = pd.concat(all_proposals, ignore_index=True) if all_proposals else pd.DataFrame()
    return SimulationResult(_summarize(daily), daily, trades, proposals)


def _grow_target_nav(target_nav: pd.Series | None, held_yesterday: pd.DataFrame | None, drift: pd.DataFrame,
                     nav: pd.Series) -> tuple[pd.Series, pd.DataFrame]:
    """The costless always-on-target fund: yesterday's NAV grown by yesterday's target mix
    (today's NAV on the first day); and today's mix, for tomorrow."""
    securities_today = drift[drift["security_id"] != CASH].assign(
        unit_value=lambda f: f["price"] * f["fx_rate"])
    if held_yesterday is None:
        target_nav = nav.copy()
    else:
        today_value = securities_today.set_index(["fund_id", "security_id"])["unit_value"]
        mix = held_yesterday.join(today_value.rename("today"), on=["fund_id", "security_id"])
        growth = (mix["today"] / mix["unit_value"]).replace([np.inf, -np.inf], np.nan).fillna(1.0)
        mix_return = (mix["target_weight"] * growth).groupby(mix["fund_id"]).sum()
        cash_weight = held_yesterday.attrs["cash_target"]
        mix_return = mix_return.add(cash_weight, fill_value=0.0)
        target_nav = target_nav.reindex(nav.index).fillna(nav) * mix_return.reindex(nav.index).fillna(1.0)
    held_yesterday = securities_today[["fund_id", "security_id", "target_weight", "unit_value"]].reset_index(
        drop=True)
    held_yesterday.attrs["cash_target"] = drift.loc[drift["security_id"] == CASH].set_index("fund_id")[
        "target_weight"]
    return target_nav, held_yesterday


def _day_record(as_of: dt.date, summary: pd.DataFrame, nav: pd.Series, target_nav: pd.Series,
                proposals: pd.DataFrame, gains: pd.Series, day_flows: pd.DataFrame | None,
                in_kind_flow) -> pd.DataFrame:
    """One row per fund of the day's result (SimulationResult.daily before its returns)."""
    by_fund = proposals.set_index("fund_id") if len(proposals) else pd.DataFrame(
        columns=["turnover", "est_cost", "est_harvested_loss", "trade_count"])
    return pd.DataFrame({
        "as_of_date": as_of,
        "fund_id": nav.index,
        "nav": nav.to_numpy(),
        # What the night's fund_summary says of the fund: status, trigger.
        "status": nav.index.map(summary.set_index("fund_id")["status"]).to_numpy(),
        "trigger": nav.index.map(summary.set_index("fund_id")["trigger"]).to_numpy(),
        "target_nav": target_nav.reindex(nav.index).to_numpy(),
        "rebalanced": nav.index.isin(by_fund.index),
        "turnover": by_fund["turnover"].reindex(nav.index).fillna(0.0).to_numpy(dtype="float64"),
        "cost": by_fund["est_cost"].reindex(nav.index).fillna(0.0).to_numpy(dtype="float64"),
        "realized_gain": gains.to_numpy(),
        "harvested_loss": by_fund["est_harvested_loss"].reindex(nav.index).fillna(0.0).to_numpy(dtype="float64"),
        "trades": by_fund["trade_count"].reindex(nav.index).fillna(0).to_numpy(dtype="int64"),
        # Subscriptions (+) and redemptions (-) of the day: the cash ones (flows.csv and cash
        # creations) settle after the close, the in-kind ones are in tonight's NAV already.
        "flow": _per_fund(day_flows, nav.index),
        "in_kind_flow": in_kind_flow,
    })


def _roll_pairs(pairs: pd.DataFrame, trades: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Yesterday's open harvests after today's executed tax trades: the nightly rule
    (``rebalance_core.harvest.open_harvests``) applied to one more day."""
    if "harvest_of" not in trades:
        return pairs
    tax = trades[(trades["reason"] == REASON_TAX) & trades["harvest_of"].notna()]
    if tax.empty:
        return pairs
    return open_harvests(tax.assign(as_of_date=as_of), open_before=pairs)


def _execute(positions: pd.DataFrame, trades: pd.DataFrame) -> pd.DataFrame:
    signed = np.where(trades["side"] == "BUY", trades["quantity"], -trades["quantity"])
    executed = pd.DataFrame({"fund_id": trades["fund_id"], "security_id": trades["security_id"], "quantity": signed})
    positions = pd.concat([positions, executed]).groupby(["fund_id", "security_id"], as_index=False)["quantity"].sum()
    return positions[positions["quantity"].abs() > 1e-9]


def _pay(cash: pd.DataFrame, trades: pd.DataFrame, funds: pd.DataFrame) -> pd.DataFrame:
    """Trades settle in the fund's base currency (their notional and cost are in it)."""
    spent = (np.where(trades["side"] == "BUY", trades["notional"], -trades["notional"]) + trades["est_cost"])
    moves = pd.DataFrame({"fund_id": trades["fund_id"], "amount": -spent}).groupby("fund_id", as_index=False).sum()
    return _add_base_cash(cash, moves, funds)


def _settle_flows(cash: pd.DataFrame, flows: pd.DataFrame | None, funds: pd.DataFrame) -> pd.DataFrame:
    """The day's subscriptions and redemptions arrive in cash (base currency) at its close."""
    if flows is None or flows.empty:
        return cash
    moves = flows.groupby("fund_id", as_index=False)["amount"].sum()
    return _add_base_cash(cash, moves, funds)


def _add_base_cash(cash: pd.DataFrame, moves: pd.DataFrame, funds: pd.DataFrame) -> pd.DataFrame:
    base = funds.drop_duplicates("fund_id").set_index("fund_id")["base_currency"]
    moves = moves.assign(currency=moves["fund_id"].map(base))
    out = pd.concat([cash, moves[["fund_id", "currency", "amount"]]], ignore_index=True)
    return out.groupby(["fund_id", "currency"], as_index=False, dropna=False)["amount"].sum()


def _roll_lots(lots: pd.DataFrame, used: pd.DataFrame, trades: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Close what was sold; open a lot for each buy at today's price."""
    key = ["fund_id", "security_id", "lot_id"]
    sold = used.groupby(key)["quantity"].sum().rename("sold") if len(used) else pd.Series(
        dtype="float64", name="sold")
    lots = lots.join(sold, on=key) if len(used) else lots.assign(sold=0.0)
    lots["quantity"] = lots["quantity"] - lots["sold"].fillna(0.0)
    lots = lots.drop(columns="sold")
    buys = trades[trades["side"] == "BUY"]
    new = pd.DataFrame({"fund_id": buys["fund_id"], "security_id": buys["security_id"],
                        "lot_id": f"SIM-{as_of:%Y%m%d}", "quantity": buys["quantity"], "unit_cost": buys["price"],
                        "acquired_date": as_of})
    return pd.concat([lots[lots["quantity"] > 1e-9], new], ignore_index=True)


def time_weighted_returns(daily: pd.DataFrame) -> pd.Series:
    """Each row's daily return, time-weighted: a subscription or redemption is not performance.

    Flows are at the day's boundaries: a cash flow of day t (flows.csv, cash creations)
    settles after t's close, so it is part of the capital that day t+1 starts with; an
    in-kind creation or redemption of day t is in t's NAV already, so it is taken out of t's
    end value. r_t = (NAV_t - in_kind_t) / (NAV_{t-1} + flow_{t-1}) - 1; a fund's first day
    has no return (NaN)."""
    daily = daily.sort_values(["fund_id", "as_of_date"])
    by = daily.groupby("fund_id", sort=False)
    start = by["nav"].shift(1) + by["flow"].shift(1).fillna(0.0)
    end = daily["nav"] - daily["in_kind_flow"].fillna(0.0)
    return (end / start - 1).reindex(daily.index)


def _per_fund(flows: pd.DataFrame | None, funds: pd.Index) -> np.ndarray:
    if flows is None or flows.empty:
        return np.zeros(len(funds))
    return flows.groupby("fund_id")["amount"].sum().reindex(funds).fillna(0.0).to_numpy(dtype="float64")


def _in_kind_flow(creations: pd.DataFrame | None, funds: pd.DataFrame, nav_per_share: pd.Series | None,
                  ids: pd.Index) -> np.ndarray:
    """Value that came in (+) or left (-) in kind: units x creation_unit x NAV per share (a
    basket is worth that, its cash component included)."""
    if creations is None or creations.empty or nav_per_share is None or not len(nav_per_share) \
            or "creation_unit" not in funds:
        return np.zeros(len(ids))
    in_kind = creations[creations["settlement"] == SETTLEMENT_IN_KIND]
    if in_kind.empty:
        return np.zeros(len(ids))
    unit = pd.to_numeric(funds.drop_duplicates("fund_id").set_index("fund_id")["creation_unit"], errors="coerce")
    value = (pd.to_numeric(in_kind["units"], errors="coerce").astype("float64")
             * pd.to_numeric(in_kind["fund_id"].map(unit), errors="coerce").astype("float64")
             * pd.to_numeric(in_kind["fund_id"].map(nav_per_share), errors="coerce").astype("float64"))
    return value.groupby(in_kind["fund_id"]).sum().reindex(ids).fillna(0.0).to_numpy(dtype="float64")


def _price_frame(prices: pd.DataFrame | None) -> pd.DataFrame:
    if prices is None or prices.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in PRICE_HISTORY_COLUMNS})
    out = prices.reindex(columns=PRICE_HISTORY_COLUMNS)
    return out.assign(as_of_date=pd.to_datetime(out["as_of_date"]),
                      close_price=pd.to_numeric(out["close_price"], errors="coerce").astype("float64"))


def _last_sessions(closes: pd.DataFrame, as_of: dt.date) -> pd.DataFrame | None:
    """The closes of the last COVARIANCE_RETURNS dates before ``as_of`` (the night's window)."""
    before = closes[closes["as_of_date"] < pd.Timestamp(as_of)]
    if before.empty:
        return None
    keep = np.sort(before["as_of_date"].unique())[-COVARIANCE_RETURNS:]
    return before[before["as_of_date"].isin(keep)].reset_index(drop=True)


def _keep_last_sessions(closes: pd.DataFrame) -> pd.DataFrame:
    """The closes of the last COVARIANCE_RETURNS dates of ``closes`` (all a later day's window reads)."""
    dates = closes["as_of_date"].unique()
    if len(dates) <= COVARIANCE_RETURNS:
        return closes
    keep = np.sort(dates)[-COVARIANCE_RETURNS:]
    return closes[closes["as_of_date"].isin(keep)].reset_index(drop=True)


def _latest_rows(tracked: pd.DataFrame) -> pd.DataFrame | None:
    """Each fund's latest earlier fund_tracking rows (as many as the longest window needs)."""
    if tracked.empty:
        return None
    tracked = tracked.sort_values(["fund_id", "as_of_date"])
    return tracked.groupby("fund_id").tail(max(REALIZED_WINDOWS) - 1).reset_index(drop=True)


def _summarize(daily: pd.DataFrame) -> pd.DataFrame:
    by = daily.groupby("fund_id", sort=True)
    first, last = by.first(), by.last()
    growth = (1 + daily["daily_return"].fillna(0.0)).groupby(daily["fund_id"]).prod()
    out = pd.DataFrame({
        "days": by.size(),
        "rebalances": by["rebalanced"].sum().astype("int64"),
        "turnover": by["turnover"].sum(),
        "est_cost": by["cost"].sum(),
        "realized_gain": by["realized_gain"].sum(),
        "harvested_loss": by["harvested_loss"].sum(),
        "trades": by["trades"].sum().astype("int64"),
        # Time-weighted: the chained daily returns (flows are not performance).
        "return": growth - 1,
        "target_return": last["target_nav"] / first["target_nav"] - 1,
    })
    out["tracking_difference"] = out["return"] - out["target_return"]
    return out.reset_index()
