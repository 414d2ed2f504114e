"""A realistic synthetic landing folder: funds, models, prices that move, positions that drift.

Used by ``make demo``, the tests and the benchmark. Funds are a mix of the policies an ops
desk runs (5/25 threshold funds, monthly and quarterly calendar funds, hybrids, band-edge
traders); prices follow a random walk over real trading days, so funds drift out of their
bands over the days. Deterministic for a given seed. Vectorized: 10,000 funds × 100
holdings take a few seconds.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from rebalance_core.calendar import sessions_between
from rebalance_pipeline.sample_book import (
    fund_book,
    fund_targets,
    models_of,
    starting_book,
    targets_frame,
    trading_costs_lots_and_flows,
    universe,
    wealth_and_review,
    write_csv,
    write_day,
)
from rebalance_pipeline.sample_etf import add_index_etf, index_etf


def generate(out: Path, start: dt.date, days: int = 3, funds: int = 36, holdings: int = 12,
             securities: int | None = None, seed: int = 7, fund_drift: float = 0.25, full_engine: bool = True,
             tax_lot_share: float = 0.1, flow_share: float = 0.05, models: int = 0, model_share: float = 0.8,
             model_change_day: int | None = None, asset_class_share: float = 0.1,
             restriction_share: float = 0.06, etf: bool | None = None) -> list[dt.date]:
    """Write ``days`` trading-day folders under ``out`` from ``start``; return their dates.

    ``full_engine`` adds what the richer policies use: trading costs (commissions, spreads,
    daily volumes), tax lots for ``tax_lot_share`` of the funds and pending flows for
    ``flow_share`` of them.

    ``models`` > 0 writes that many model portfolios (model_targets.csv, models.csv) and puts
    ``model_share`` of the funds on one (funds.csv ``model_id``; they have no targets.csv
    rows); the first model is reweighted on day ``model_change_day`` (default: the last day,
    when there are two or more), so its followers rebalance with trigger ``model_change``;
    ``asset_class_share`` of the funds judge their bands by asset class. Without models the
    files are exactly those of earlier versions (same seed, same bytes).

    With models (the wealth-book sample), the funds with tax lots harvest losses (funds.csv
    ``harvest_loss_pct`` 5 %, ``harvest_min_loss`` 250) into the substitutes of
    substitutes.csv (two per security, of its asset class), and ``restriction_share`` of the
    funds carry a restriction on one of their holdings (restrictions.csv: an exclusion with or
    without a substitute, a no_buy, a no_sell); a fifth of the funds are approved by rule when
    a rebalance is small (``auto_approve_max_turnover`` 10 %, ``auto_approve_max_cost_bps`` 8)
    and a quarter need two approvals above 5 million (``second_approval_notional``).

    With models, one more fund is an index ETF (``index_etf``): ETF00001 follows the index
    model IDX00 (30 constituents, daily index_levels.csv), has shares outstanding
    (fund_shares.csv), a ``ric`` compliance setting and a ``max_tracking_error``, and the
    index's securities name their issuers in securities.csv.

    ``etf`` (default: when there are models) adds an index ETF, ``ETF00000``: it follows the
    index model ``INDEX00`` with ``index_tracking``, a ``creation_unit`` of 50,000 shares and
    ``custom_baskets``; the index's reconstitution (two constituents swapped, weights redrawn)
    is announced on the second day, effective on the next trading day, so the ETF trades it
    at the second day's close (``index_event``); authorized participants create and redeem
    both ways, in kind and in cash (creations.csv), and fund_shares.csv gives its shares
    outstanding. Its files, like every sample fund's, never show earlier orders executed.
    """
    rng = np.random.default_rng(seed)
    dates = sessions_between(start, start + dt.timedelta(days=days * 2 + 10))[:days]
    n_sec = securities or max(holdings * 4, 60)
    # The draws of ``rng`` happen in this order, helper after helper: the same seed gives the
    # same files byte for byte.
    sec_ids, asset_class, lot_size, price_path = universe(rng, n_sec, len(dates))
    fund_ids, funds_frame, nav0 = fund_book(rng, funds)
    picks, weights, cash_target = fund_targets(rng, funds, holdings, n_sec)
    model_files: dict[int, dict[str, pd.DataFrame]] = {}
    followers = np.zeros(funds, dtype=bool)
    if models > 0:
        model_files, followers = models_of(np.random.default_rng([seed, 9]), models, model_share, model_change_day,
                                         asset_class_share, days, sec_ids, picks, weights, cash_target, funds_frame)
    targets = targets_frame(fund_ids, sec_ids, picks, weights, cash_target, followers)
    positions, cash = starting_book(rng, fund_ids, sec_ids, picks, weights, cash_target, nav0, price_path,
                                     fund_drift)

    securities_frame = pd.DataFrame({"security_id": sec_ids, "lot_size": lot_size, "asset_class": asset_class,
                                     "tradable": "true"})
    extra_daily: dict[str, pd.DataFrame] = {}
    if full_engine:
        extra_daily = trading_costs_lots_and_flows(rng, start, fund_ids, sec_ids, asset_class, price_path, nav0,
                                                    positions, funds_frame, securities_frame, tax_lot_share,
                                                    flow_share)
    if models > 0 and full_engine:
        wealth_and_review(seed, fund_ids, sec_ids, asset_class, positions, extra_daily["tax_lots"],
                           restriction_share, funds_frame, model_files)
    tracked_etf = None
    if models > 0:
        tracked_etf = index_etf(np.random.default_rng([seed, 10]), sec_ids, price_path, dates)
        funds_frame = pd.concat([funds_frame, tracked_etf["funds"]], ignore_index=True)
        positions = pd.concat([positions, tracked_etf["positions"]], ignore_index=True)
        cash = pd.concat([cash, tracked_etf["cash"]], ignore_index=True)
        extra_daily["fund_shares"] = tracked_etf["fund_shares"]
        securities_frame["issuer"] = pd.Series(sec_ids).map(tracked_etf["issuers"]).to_numpy()
        for stem in ("model_targets", "models"):
            model_files[0][stem] = pd.concat([model_files[0][stem], tracked_etf[stem]], ignore_index=True)
    etf_daily: dict[int, dict[str, pd.DataFrame]] = {}
    if etf if etf is not None else models > 0:
        funds_frame, positions, cash, extra_daily, etf_daily = add_index_etf(
            np.random.default_rng([seed, 6]), dates, sec_ids, price_path, funds_frame, positions, cash, extra_daily,
            model_files, holdings)
    first_day = {"funds": funds_frame, "targets": targets, "securities": securities_frame}
    for day, as_of in enumerate(dates):
        index_levels = [tracked_etf["index_levels"][day]] if tracked_etf is not None else []
        write_day(Path(out) / as_of.isoformat(), as_of, sec_ids, price_path[day], positions, cash, extra_daily,
                   index_levels, first_day if day == 0 else {}, model_files.get(day, {}), etf_daily.get(day, {}))
    return dates


class SampleError(Exception):
    """A landing folder that cannot be extended (missing, or not one this module wrote)."""


def extend_landing(out: Path, days: int = 1, engine=None) -> list[dt.date]:
    """Add ``days`` trading days after the latest date folder of ``out``; return their dates.

    The same funds, models and books: positions, cash, tax lots and flows are those of the
    latest date, reference files stay where they are (their latest version applies), and
    prices continue their random walk from the latest close (deterministic: seeded by the
    new date). With the warehouse (``engine``), a synthetic order desk executes what it
    approved and exported: the first new date gets an ``executions.csv`` with every order of
    those proposals filled at that day's close, and its positions, cash and tax lots move
    with the fills, as a real desk's books would. So a newcomer can run the demo's second
    morning: ``rebalance sample --out DIR --extend`` then ``rebalance run``.
    """
    out = Path(out)
    if not out.is_dir():
        raise SampleError(f"{out} does not exist: write it first (rebalance sample --out {out})")
    dated = sorted(p for p in out.iterdir() if p.is_dir() and _iso_date(p.name) is not None)
    if not dated:
        raise SampleError(f"{out} holds no date folders (YYYY-MM-DD) to extend")
    latest_folder = dated[-1]
    latest = _iso_date(latest_folder.name)
    for stem in ("prices", "positions", "cash"):
        if not (latest_folder / f"{stem}.csv").exists():
            raise SampleError(f"{latest_folder} has no {stem}.csv: only a CSV folder written by "
                              "`rebalance sample` can be extended")
    securities = None
    for folder in reversed(dated):
        if (folder / "securities.csv").exists():
            securities = pd.read_csv(folder / "securities.csv", dtype={"security_id": str})
            break
    prices = pd.read_csv(latest_folder / "prices.csv", dtype={"security_id": str})
    carried = {stem: pd.read_csv(latest_folder / f"{stem}.csv", dtype={"fund_id": str, "security_id": str})
               for stem in ("positions", "cash", "tax_lots", "flows", "fund_shares")
               if (latest_folder / f"{stem}.csv").exists()}
    levels = (pd.read_csv(latest_folder / "index_levels.csv", dtype={"model_id": str})
              if (latest_folder / "index_levels.csv").exists() else None)
    index_weights = _latest_model_targets(dated) if levels is not None else None
    dates = sessions_between(latest + dt.timedelta(days=1), latest + dt.timedelta(days=days * 2 + 10))[:days]
    asset_class = (prices["security_id"].map(securities.set_index("security_id")["asset_class"])
                   if securities is not None and "asset_class" in securities else pd.Series(None, index=prices.index))
    daily_vol = np.where(asset_class.to_numpy() == "fixed_income", 0.004, 0.015)
    close = prices["close_price"].to_numpy(dtype="float64")
    orders = _desk_orders(engine, dated, dates[0]) if engine is not None and dates else None
    # Yesterday's pending flows settle into cash after its close (as the replay settles them);
    # the new days bring no new flows, so a subscription is not invested twice.
    flows = carried.pop("flows", None)
    if flows is not None and len(flows) and "cash" in carried:
        carried["cash"] = _settled_flows(carried["cash"], flows, _base_currencies(dated))
    for as_of in dates:
        rng = np.random.default_rng(as_of.toordinal())
        close = np.round(close * np.exp(rng.normal(0.0002, daily_vol)), 4)
        folder = out / as_of.isoformat()
        stamp = as_of.isoformat()
        if orders is not None and len(orders):
            fills = orders.assign(price=orders["security_id"].map(
                pd.Series(close, index=prices["security_id"].to_numpy())))
            fills = fills[fills["price"].notna()]
            write_csv(fills[["proposal_id", "security_id", "side", "quantity", "price"]].assign(status="filled"),
                      folder / "executions.csv")
            carried = _filled_books(carried, fills, stamp)
            orders = None   # the desk executes them once, on the first new date
        if levels is not None:
            # Each index moves with its constituents' closes (weights of its latest version).
            moved = pd.Series(close / prices["close_price"].to_numpy(dtype="float64"), index=prices["security_id"])
            rows = index_weights.assign(growth=index_weights["security_id"].map(moved).fillna(1.0))
            factor = (rows["target_weight"] * rows["growth"]).groupby(rows["model_id"]).sum()
            levels = levels.assign(level=np.round(levels["level"] * levels["model_id"].map(factor).fillna(1.0), 4))
            write_csv(levels, folder / "index_levels.csv")
        write_csv(prices.assign(as_of_date=stamp, close_price=close), folder / "prices.csv")
        for stem, frame in carried.items():
            write_csv(frame.assign(as_of_date=stamp) if "as_of_date" in frame else frame, folder / f"{stem}.csv")
        prices = prices.assign(close_price=close)
    return dates


def _base_currencies(dated: list[Path]) -> pd.Series:
    """Each fund's base currency in the funds.csv versions of the folder (the latest wins)."""
    versions = [pd.read_csv(f / "funds.csv", dtype={"fund_id": str}) for f in dated if (f / "funds.csv").exists()]
    if not versions:
        return pd.Series(dtype=object)
    funds = pd.concat(versions, ignore_index=True).drop_duplicates("fund_id", keep="last")
    return funds.set_index("fund_id")["base_currency"]


def _settled_flows(cash: pd.DataFrame, flows: pd.DataFrame, base: pd.Series) -> pd.DataFrame:
    """``cash`` with each fund's pending flows (base currency) added to its base-currency row."""
    moved = flows.groupby("fund_id")["amount"].sum().rename("flow").reset_index()
    moved["currency"] = moved["fund_id"].map(base).fillna("USD")
    cash = cash.merge(moved, on=["fund_id", "currency"], how="outer")
    cash["amount"] = (cash["amount"].fillna(0.0) + cash["flow"].fillna(0.0)).round(2)
    return cash.drop(columns="flow").reset_index(drop=True)


def _desk_orders(engine, dated: list[Path], first: dt.date) -> pd.DataFrame:
    """Orders the warehouse approved and exported before ``first`` that no execution (stored,
    or in an executions.csv of the folder) reported yet."""
    from rebalance_pipeline.warehouse import query_sql, read_frame

    with engine.connect() as conn:
        orders = read_frame(conn, query_sql("exported_unreported_orders"), {"d": first})
    reported = [pd.read_csv(f / "executions.csv", dtype={"proposal_id": str})["proposal_id"]
                for f in dated if (f / "executions.csv").exists()]
    if reported and len(orders):
        orders = orders[~orders["proposal_id"].isin(pd.concat(reported))]
    orders["quantity"] = pd.to_numeric(orders["quantity"]).astype("float64")
    return orders.reset_index(drop=True)


def _filled_books(carried: dict[str, pd.DataFrame], fills: pd.DataFrame, stamp: str) -> dict[str, pd.DataFrame]:
    """Positions, cash and tax lots after the fills: quantities move by the trades, cash by
    their notional in their currency, a sale closes the oldest lots first, a buy opens a lot."""
    books = dict(carried)
    signed = fills["quantity"].where(fills["side"] == "BUY", -fills["quantity"])
    move = signed.groupby([fills["fund_id"], fills["security_id"]]).sum().rename("move")
    if "positions" in books:
        positions = books["positions"].merge(move.reset_index(), on=["fund_id", "security_id"], how="outer")
        positions["quantity"] = positions["quantity"].fillna(0.0) + positions["move"].fillna(0.0)
        positions["as_of_date"] = stamp
        books["positions"] = positions[positions["quantity"].abs() > 1e-9].drop(columns="move").reset_index(drop=True)
    if "cash" in books:
        spend = (signed * fills["price"]).groupby([fills["fund_id"], fills["currency"]]).sum().rename("spend")
        cash = books["cash"].merge(spend.reset_index(), on=["fund_id", "currency"], how="outer")
        cash["amount"] = (cash["amount"].fillna(0.0) - cash["spend"].fillna(0.0)).round(2)
        cash["as_of_date"] = stamp
        books["cash"] = cash.drop(columns="spend").reset_index(drop=True)
    if "tax_lots" in books:
        lots = books["tax_lots"].sort_values(["fund_id", "security_id", "acquired_date", "lot_id"]).copy()
        for (fund, security), sold in (-move[move < 0]).items():   # the demo's few sales, oldest lots first
            rows = lots.index[(lots["fund_id"] == fund) & (lots["security_id"] == security)]
            before = lots.loc[rows, "quantity"].cumsum() - lots.loc[rows, "quantity"]
            lots.loc[rows, "quantity"] = (lots.loc[rows, "quantity"] - (sold - before).clip(lower=0)).clip(lower=0)
        bought = fills[fills["side"] == "BUY"]
        new = pd.DataFrame({"fund_id": bought["fund_id"], "security_id": bought["security_id"],
                            "lot_id": bought["proposal_id"].str[-12:] + "-" + bought["security_id"],
                            "quantity": bought["quantity"], "unit_cost": bought["price"], "acquired_date": stamp})
        lots = pd.concat([lots[lots["quantity"] > 1e-9], new.reindex(columns=lots.columns)], ignore_index=True)
        if "as_of_date" in lots:
            lots["as_of_date"] = stamp
        books["tax_lots"] = lots
    return books


def _latest_model_targets(dated: list[Path]) -> pd.DataFrame:
    """Each model's rows of its latest model_targets.csv version in the folders."""
    found: dict[str, pd.DataFrame] = {}
    for folder in reversed(dated):
        path = folder / "model_targets.csv"
        if path.exists():
            frame = pd.read_csv(path, dtype={"model_id": str, "security_id": str})
            for model, rows in frame.groupby("model_id"):
                found.setdefault(model, rows)
    return pd.concat(found.values(), ignore_index=True) if found else pd.DataFrame(
        columns=["model_id", "security_id", "target_weight"])


def _iso_date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None
