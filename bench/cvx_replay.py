"""The comparison replay for bench_speed.py: a landing folder's funds over its dates in
cvxportfolio's MarketSimulator, on the landing's own prices (no network, no download).

Market data: each date's prices.csv pivoted to a dates x securities frame (the held and
targeted securities of the funds); returns r_t = p_{t+1} / p_t - 1 (cvxportfolio's
convention), cash at zero return (``cash_key="cash"``), no minimum history. Policy per
fund: ``PeriodicRebalance`` to the fund's targets.csv weights (cash the rest), rebalanced on
the days Rebalance's replay rebalanced that fund (``--rebalance-days``: its
simulation_daily.csv), else on each month's first trading day. Trades are rounded to
whole shares at the day's price and pay a linear cost of 5 bps. The initial holdings are
the first date's positions at its prices plus its cash.

Prints one line of JSON: seconds to import, to read the files, to build the market data,
to back-test, and the funds' final values. cvxportfolio (GPL) is used, not copied: a
benchmark dependency only (``pip install -e .[bench]``), never imported by the product.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

START = time.perf_counter()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.csv as pa_csv  # noqa: E402

CASH = "CASH"  # the pseudo security id of a fund's cash in targets.csv (rebalance_core.schema.CASH)


def read_csv(path: Path) -> pd.DataFrame:
    return pa_csv.read_csv(path).to_pandas()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("landing", type=Path)
    parser.add_argument("date_from")
    parser.add_argument("date_to")
    parser.add_argument("--rebalance-days", type=Path, default=None,
                        help="Rebalance's simulation_daily.csv: rebalance each fund on the days it did there")
    parser.add_argument("--cost", type=float, default=0.0005, help="linear transaction cost (fraction of notional)")
    args = parser.parse_args()
    times = {}
    import logging

    import cvxportfolio as cvx
    logging.getLogger("cvxportfolio").setLevel(logging.ERROR)
    times["import_s"] = time.perf_counter() - START

    start = time.perf_counter()
    dates = sorted(p.name for p in args.landing.iterdir() if re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.name)
                   and args.date_from <= p.name <= args.date_to)
    first = args.landing / dates[0]
    targets = read_csv(first / "targets.csv")
    targets = targets[targets["security_id"] != CASH]   # targets.csv's cash row: cvxportfolio's cash is the rest
    positions = read_csv(first / "positions.csv")
    cash = read_csv(first / "cash.csv")
    universe = sorted(set(targets["security_id"]) | set(positions["security_id"]))
    prices = pd.concat([read_csv(args.landing / d / "prices.csv")[["security_id", "close_price"]].assign(day=d)
                        for d in dates], ignore_index=True)
    times["read_s"] = time.perf_counter() - start

    start = time.perf_counter()
    close = prices[prices["security_id"].isin(universe)].pivot(index="day", columns="security_id",
                                                               values="close_price")
    close.index = pd.DatetimeIndex(pd.to_datetime(close.index), name=None)
    close = close.reindex(columns=universe).astype("float64")
    returns = (close.shift(-1) / close - 1.0).iloc[:-1]
    market = cvx.UserProvidedMarketData(returns=returns, prices=close.iloc[:-1], cash_key="cash",
                                        min_history=pd.Timedelta(0))
    simulator = cvx.MarketSimulator(market_data=market, costs=[cvx.TransactionCost(a=args.cost, b=None)],
                                    round_trades=True)
    if args.rebalance_days is not None and args.rebalance_days.exists():
        daily = pd.read_csv(args.rebalance_days, usecols=["fund_id", "as_of_date", "rebalanced"])
        daily = daily[daily["rebalanced"].astype(str).str.lower().isin(["true", "1"])]
        rebalance_days = {f: pd.DatetimeIndex(pd.to_datetime(g["as_of_date"])) for f, g in daily.groupby("fund_id")}
    else:
        rebalance_days = {}
    month_starts = returns.index.to_series().groupby(returns.index.to_period("M")).first()
    times["market_data_s"] = time.perf_counter() - start

    start = time.perf_counter()
    first_close = close.iloc[0]
    finals, trades_days = {}, {}
    for fund, rows in targets.groupby("fund_id", sort=True):
        weights = rows.set_index("security_id")["target_weight"].reindex(universe).fillna(0.0)
        weights["cash"] = 1.0 - weights.sum()
        held = positions[positions["fund_id"] == fund].set_index("security_id")["quantity"]
        h0 = (held.reindex(universe).fillna(0.0) * first_close).astype("float64")
        h0["cash"] = float(cash.loc[cash["fund_id"] == fund, "amount"].sum())
        days = rebalance_days.get(fund, pd.DatetimeIndex(month_starts.to_numpy()))
        days = days[days.isin(returns.index)]
        policy = cvx.PeriodicRebalance(target=weights, rebalancing_times=days) if len(days) else cvx.Hold()
        h0 = h0.reindex(simulator.market_data.universe_at_time(returns.index[0])).fillna(0.0)
        result = simulator.backtest(policy, start_time=returns.index[0], end_time=returns.index[-1], h=h0)
        finals[fund] = float(np.round(result.v.iloc[-1], 2))
        trades_days[fund] = len(days)
    times["backtest_s"] = time.perf_counter() - start
    times["total_s"] = time.perf_counter() - START
    print(json.dumps({**{k: round(v, 3) for k, v in times.items()}, "days": len(dates), "securities": len(universe),
                      "funds": len(finals), "rebalance_days": trades_days, "final_values": finals}))


if __name__ == "__main__":
    main()
