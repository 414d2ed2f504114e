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
import pyarrow as pa
import pyarrow.csv as pa_csv

from rebalance_core.calendar import sessions_between
from rebalance_core.inputs import REGISTRY

POLICY_MIX = [
    # policy, frequency, abs_band, rel_band, rebalance_to, weight in the mix
    ("threshold", "daily", 0.05, 0.25, "target", 0.35),
    ("threshold", "daily", 0.03, None, "band", 0.15),
    ("calendar", "monthly", None, None, "target", 0.2),
    ("calendar", "quarterly", None, None, "target", 0.1),
    ("hybrid", "monthly", 0.02, 0.20, "target", 0.2),
]


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """One landing file, checked against its declaration in the input registry
    (``rebalance_core.inputs``): the sample writes only files and columns the night reads."""
    declared = REGISTRY.get(path.stem)
    if declared is None:
        raise ValueError(f"{path.name} is not an input file of the registry (rebalance_core.inputs)")
    names = [c.name for c in declared.columns]
    unknown = [c for c in frame.columns if c not in names]
    missing = [c.name for c in declared.columns if c.required and c.name not in frame.columns]
    if unknown or missing:
        raise ValueError(f"{path.name}: columns {unknown} are not declared, {missing} are required")
    path.parent.mkdir(parents=True, exist_ok=True)
    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)


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

    With models, one more fund is an index ETF (``_index_etf``): ETF00001 follows the index
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
    sec_ids = np.array([f"SEC{i:05d}" for i in range(n_sec)])
    asset_class = rng.choice(["equity", "fixed_income", "real_estate", "commodity"], n_sec, p=[.55, .3, .1, .05])
    lot_size = np.where(rng.random(n_sec) < 0.1, 100, 1)
    start_price = np.round(rng.lognormal(mean=4.0, sigma=0.8, size=n_sec), 2) + 1.0
    daily_vol = np.where(asset_class == "fixed_income", 0.004, 0.015)
    shocks = rng.normal(0.0002, daily_vol, size=(len(dates), n_sec))
    shocks[0] = 0.0
    price_path = np.round(start_price * np.exp(np.cumsum(shocks, axis=0)), 4)

    fund_ids = np.array([f"FUND{i:05d}" for i in range(funds)])
    mix = rng.choice(len(POLICY_MIX), funds, p=[m[-1] for m in POLICY_MIX])
    policy = pd.DataFrame([POLICY_MIX[i][:5] for i in mix],
                          columns=["policy", "frequency", "abs_band", "rel_band", "rebalance_to"])
    nav0 = np.round(rng.lognormal(mean=16.5, sigma=1.0, size=funds), -3)
    funds_frame = pd.DataFrame({
        "fund_id": fund_ids,
        "name": [f"Model portfolio {i:05d}" for i in range(funds)],
        "base_currency": "USD",
        **{c: policy[c] for c in policy.columns},
        "min_trade_notional": np.where(nav0 > 5e6, 2500.0, 500.0),
        "cash_buffer": np.where(rng.random(funds) < 0.5, 0.01, 0.0),
        "allow_fractional": np.where(rng.random(funds) < 0.15, "true", "false"),
    })
    funds_frame = funds_frame.reindex(columns=["fund_id", "name", "base_currency", "policy", "frequency", "abs_band",
                                               "rel_band", "rebalance_to", "min_trade_notional", "cash_buffer",
                                               "allow_fractional"])

    # Holdings: each fund picks `holdings` distinct securities (a random window of a shuffled
    # universe keeps it vectorized and distinct).
    offsets = rng.integers(0, n_sec, size=funds)
    picks = (offsets[:, None] + np.arange(holdings)[None, :] * max(1, n_sec // holdings)) % n_sec
    raw_w = rng.gamma(2.0, 1.0, size=(funds, holdings))
    cash_target = np.where(rng.random(funds) < 0.3, 0.02, 0.0)
    weights = raw_w / raw_w.sum(axis=1, keepdims=True) * (1 - cash_target)[:, None]
    weights = np.round(weights, 6)
    weights[:, -1] += (1 - cash_target) - weights.sum(axis=1)  # exact sum after rounding
    model_files: dict[int, dict[str, pd.DataFrame]] = {}
    followers = np.zeros(funds, dtype=bool)
    if models > 0:
        # A generator of its own: the draws of a book without models stay as they were.
        mrng = np.random.default_rng([seed, 9])
        model_ids = np.array([f"MODEL{i:02d}" for i in range(models)])
        model_offsets = mrng.integers(0, n_sec, size=models)
        model_picks = (model_offsets[:, None] + np.arange(holdings)[None, :] * max(1, n_sec // holdings)) % n_sec
        model_weights = _unit_weights(mrng.gamma(2.0, 1.0, size=(models, holdings)))
        followers = mrng.random(funds) < model_share
        follows = np.where(followers, mrng.integers(0, models, size=funds), -1)
        picks[followers] = model_picks[follows[followers]]
        weights[followers] = model_weights[follows[followers]]
        cash_target[followers] = 0.0
        funds_frame["model_id"] = np.where(followers, model_ids[np.clip(follows, 0, None)], None)
        funds_frame["band_level"] = np.where(mrng.random(funds) < asset_class_share, "asset_class", "security")

        def model_frame(ids, chosen, w) -> pd.DataFrame:
            return pd.DataFrame({"model_id": np.repeat(ids, holdings), "security_id": sec_ids[chosen.ravel()],
                                 "target_weight": w.ravel()})

        model_files[0] = {"model_targets": model_frame(model_ids, model_picks, model_weights),
                          "models": pd.DataFrame({"model_id": model_ids,
                                                  "name": [f"Model {chr(65 + i % 26)}{i // 26 or ''}"
                                                           for i in range(models)]})}
        change_day = model_change_day if model_change_day is not None else (days - 1 if days > 1 else None)
        if change_day is not None and 0 < change_day < days:
            model_files[change_day] = {"model_targets": model_frame(
                model_ids[:1], model_picks[:1], _unit_weights(mrng.gamma(2.0, 1.0, size=(1, holdings))))}

    fund_col = np.repeat(fund_ids, holdings)
    sec_col = sec_ids[picks.ravel()]
    targets = pd.DataFrame({"fund_id": fund_col, "security_id": sec_col, "target_weight": weights.ravel()})
    cash_rows = pd.DataFrame({"fund_id": fund_ids[cash_target > 0], "security_id": "CASH",
                              "target_weight": cash_target[cash_target > 0]})
    targets = pd.concat([targets, cash_rows], ignore_index=True).sort_values(["fund_id", "security_id"])
    if followers.any():
        targets = targets[~targets["fund_id"].isin(fund_ids[followers])]

    # Start off target by a fund-specific amount, so some funds are already out of band.
    tilt = rng.normal(0, fund_drift, size=(funds, holdings)) * rng.random((funds, 1))
    held_w = np.clip(weights * (1 + tilt), 0, None)
    held_w = held_w / held_w.sum(axis=1, keepdims=True) * (1 - cash_target)[:, None] * 0.985
    quantity = np.floor(held_w * nav0[:, None] / price_path[0][picks])
    positions = pd.DataFrame({"fund_id": fund_col, "security_id": sec_col, "quantity": quantity.ravel()})
    positions = positions[positions["quantity"] > 0]
    invested = (quantity * price_path[0][picks]).sum(axis=1)
    cash = pd.DataFrame({"fund_id": fund_ids, "currency": "USD", "amount": np.round(nav0 - invested, 2)})

    securities_frame = pd.DataFrame({"security_id": sec_ids, "lot_size": lot_size, "asset_class": asset_class,
                                     "tradable": "true"})
    extra_daily: dict[str, pd.DataFrame] = {}
    if full_engine:
        spread = {"equity": 2.0, "fixed_income": 5.0, "real_estate": 8.0, "commodity": 6.0}
        securities_frame["half_spread_bps"] = pd.Series(asset_class).map(spread).to_numpy()
        securities_frame["adv"] = np.round(rng.lognormal(13.5, 1.0, n_sec), -2)
        funds_frame["commission_bps"] = np.where(rng.random(funds) < 0.5, 1.0, np.nan)
        funds_frame["commission_per_share"] = np.where(rng.random(funds) < 0.5, 0.005, np.nan)
        funds_frame["tax_lot_method"] = rng.choice(["hifo", "fifo", "min_gain"], funds)
        taxed = positions[positions["fund_id"].isin(fund_ids[rng.random(funds) < tax_lot_share])]
        price_of = pd.Series(price_path[0], index=sec_ids)
        older = (taxed["quantity"] * 0.6).round()
        cost = taxed["security_id"].map(price_of).to_numpy()
        lots = pd.concat([
            taxed.assign(lot_id="L1", quantity=older, unit_cost=np.round(cost * rng.uniform(0.6, 1.1, len(taxed)), 4),
                         acquired_date=[(start - dt.timedelta(days=int(d))).isoformat()
                                        for d in rng.integers(400, 1500, len(taxed))]),
            taxed.assign(lot_id="L2", quantity=taxed["quantity"] - older,
                         unit_cost=np.round(cost * rng.uniform(0.9, 1.2, len(taxed)), 4),
                         acquired_date=[(start - dt.timedelta(days=int(d))).isoformat()
                                        for d in rng.integers(5, 360, len(taxed))]),
        ], ignore_index=True)
        extra_daily["tax_lots"] = lots[lots["quantity"] > 0][
            ["fund_id", "security_id", "lot_id", "quantity", "unit_cost", "acquired_date"]]
        flowing = fund_ids[rng.random(funds) < flow_share]
        extra_daily["flows"] = pd.DataFrame({
            "fund_id": flowing,
            "amount": np.round(pd.Series(nav0, index=fund_ids)[flowing].to_numpy()
                               * rng.uniform(-0.08, 0.08, len(flowing)), 2)})
    if models > 0 and full_engine:
        wealth = _wealth_rules(np.random.default_rng([seed, 11]), fund_ids, sec_ids, asset_class, positions,
                               extra_daily["tax_lots"], restriction_share)
        funds_frame["harvest_loss_pct"] = funds_frame["fund_id"].map(wealth["harvest_loss_pct"])
        funds_frame["harvest_min_loss"] = np.where(funds_frame["harvest_loss_pct"].notna(), 250.0, np.nan)
        # Review at scale: a few accounts approved by rule when a rebalance is small and cheap,
        # and four eyes on a quarter of them above 5 million of gross notional.
        review_rng = np.random.default_rng([seed, 12])
        straight = review_rng.random(funds) < 0.2
        funds_frame["auto_approve_max_turnover"] = np.where(straight, 0.10, np.nan)
        funds_frame["auto_approve_max_cost_bps"] = np.where(straight, 8.0, np.nan)
        funds_frame["second_approval_notional"] = np.where(review_rng.random(funds) < 0.25, 5_000_000.0, np.nan)
        for stem in ("restrictions", "substitutes"):
            model_files[0][stem] = wealth[stem]
    if models > 0:
        tracked_etf = _index_etf(np.random.default_rng([seed, 10]), sec_ids, price_path, dates)
        funds_frame = pd.concat([funds_frame, tracked_etf["funds"]], ignore_index=True)
        positions = pd.concat([positions, tracked_etf["positions"]], ignore_index=True)
        cash = pd.concat([cash, tracked_etf["cash"]], ignore_index=True)
        extra_daily["fund_shares"] = tracked_etf["fund_shares"]
        securities_frame["issuer"] = pd.Series(sec_ids).map(tracked_etf["issuers"]).to_numpy()
        for stem in ("model_targets", "models"):
            model_files[0][stem] = pd.concat([model_files[0][stem], tracked_etf[stem]], ignore_index=True)
    etf_daily: dict[int, dict[str, pd.DataFrame]] = {}
    if etf if etf is not None else models > 0:
        funds_frame, positions, cash, extra_daily, etf_daily = _add_index_etf(
            np.random.default_rng([seed, 6]), dates, sec_ids, price_path, funds_frame, positions, cash, extra_daily,
            model_files, holdings)
    for day, as_of in enumerate(dates):
        folder = Path(out) / as_of.isoformat()
        stamp = as_of.isoformat()
        write_csv(pd.DataFrame({"as_of_date": stamp, "security_id": sec_ids, "close_price": price_path[day],
                                "currency": "USD"}), folder / "prices.csv")
        write_csv(positions.assign(as_of_date=stamp)[["as_of_date", "fund_id", "security_id", "quantity"]],
                  folder / "positions.csv")
        write_csv(cash.assign(as_of_date=stamp)[["as_of_date", "fund_id", "currency", "amount"]], folder / "cash.csv")
        for stem, frame in extra_daily.items():
            write_csv(frame, folder / f"{stem}.csv")
        levels = ([tracked_etf["index_levels"][day]] if models > 0 else []) + (
            [etf_daily[day]["index_levels"]] if "index_levels" in etf_daily.get(day, {}) else [])
        if levels:
            write_csv(pd.concat(levels, ignore_index=True), folder / "index_levels.csv")
        if day == 0:
            write_csv(funds_frame, folder / "funds.csv")
            write_csv(targets, folder / "targets.csv")
            write_csv(securities_frame, folder / "securities.csv")
        for stem, frame in model_files.get(day, {}).items():
            write_csv(frame, folder / f"{stem}.csv")
        for stem, frame in etf_daily.get(day, {}).items():
            if stem != "index_levels":
                write_csv(frame, folder / f"{stem}.csv")
    return dates


def _index_etf(rng: np.random.Generator, sec_ids: np.ndarray, price_path: np.ndarray,
               dates: list[dt.date]) -> dict:
    """An index ETF on its own index model IDX00: 30 constituents, four of 11 % and 26 small
    ones (a RIC-diversified index: issuers above 5 % hold 46 % together), the first large and
    the first small constituent of one issuer; the fund holds the index a few percent off,
    with 50-ish NAV per share; the index level is 1,000 on the first date and moves with the
    constituents' closes."""
    count = min(30, len(sec_ids))
    chosen = rng.choice(len(sec_ids), size=count, replace=False)
    weights = np.full(count, 0.56 / max(count - 4, 1))
    weights[:4] = 0.11
    weights = np.round(weights / weights.sum(), 6)
    weights[-1] += 1 - weights.sum()
    nav = 25_000_000.0
    held = weights * rng.uniform(0.95, 1.05, count) * 0.995
    quantity = np.floor(held * nav / price_path[0][chosen])
    invested = float((quantity * price_path[0][chosen]).sum())
    growth = (price_path[:, chosen] / price_path[0][chosen]) @ weights
    issuers = {sid: f"ISSUER-{sid}" for sid in sec_ids[chosen]}
    issuers[sec_ids[chosen[4 % count]]] = issuers[sec_ids[chosen[0]]]   # two securities of one issuer
    return {
        "funds": pd.DataFrame([{"fund_id": "ETF00001", "name": "Index ETF on IDX00", "base_currency": "USD",
                                "policy": "calendar", "frequency": "quarterly", "abs_band": None, "rel_band": None,
                                "rebalance_to": "target", "min_trade_notional": 1000.0, "cash_buffer": 0.0,
                                "allow_fractional": "false", "model_id": "IDX00", "band_level": "security",
                                "compliance": "ric", "max_tracking_error": 0.02}]),
        "positions": pd.DataFrame({"fund_id": "ETF00001", "security_id": sec_ids[chosen], "quantity": quantity}),
        "cash": pd.DataFrame({"fund_id": ["ETF00001"], "currency": ["USD"], "amount": [round(nav - invested, 2)]}),
        "model_targets": pd.DataFrame({"model_id": "IDX00", "security_id": sec_ids[chosen], "target_weight": weights}),
        "models": pd.DataFrame({"model_id": ["IDX00"], "name": ["Index IDX00"]}),
        "index_levels": [pd.DataFrame({"model_id": ["IDX00"], "level": [round(1000.0 * g, 4)]}) for g in growth],
        "fund_shares": pd.DataFrame({"fund_id": ["ETF00001"], "shares_outstanding": [nav // 50]}),
        "issuers": issuers,
    }


def _wealth_rules(rng: np.random.Generator, fund_ids: np.ndarray, sec_ids: np.ndarray, asset_class: np.ndarray,
                  positions: pd.DataFrame, tax_lots: pd.DataFrame, restriction_share: float) -> dict:
    """Harvest settings for the funds with tax lots, substitutes per security, restrictions."""
    harvest = pd.Series(0.05, index=pd.Index(tax_lots["fund_id"].unique(), name="fund_id"))
    # Substitutes: the next two securities of the same asset class (ranks 1 and 2).
    frame = pd.DataFrame({"security_id": sec_ids, "asset_class": asset_class})
    frame["order"] = frame.groupby("asset_class").cumcount()
    size = frame.groupby("asset_class")["security_id"].transform("size")
    by_class = frame.set_index(["asset_class", "order"])["security_id"]
    substitutes = pd.concat([
        pd.DataFrame({"security_id": frame["security_id"], "rank": rank,
                      "substitute_id": by_class.reindex(pd.MultiIndex.from_arrays(
                          [frame["asset_class"], (frame["order"] + rank) % size])).to_numpy()})
        for rank in (1, 2)], ignore_index=True)
    substitutes = substitutes[substitutes["substitute_id"] != substitutes["security_id"]]
    # Restrictions: one held security of a few funds each (at least one of each kind).
    count = min(len(fund_ids), max(4, round(restriction_share * len(fund_ids))))
    restricted = rng.choice(fund_ids, count, replace=False)
    held = positions[positions["fund_id"].isin(restricted)].drop_duplicates("fund_id")
    kinds = np.resize(np.array(["exclude+", "exclude", "no_buy", "no_sell"]), len(held))
    rule = np.char.rstrip(kinds.astype(str), "+")
    with_substitute = kinds == "exclude+"
    first_substitute = substitutes[substitutes["rank"] == 1].set_index("security_id")["substitute_id"]
    restrictions = pd.DataFrame({"fund_id": held["fund_id"].to_numpy(), "security_id": held["security_id"].to_numpy(),
                                 "rule": rule,
                                 "substitute_id": np.where(with_substitute, held["security_id"].map(
                                     first_substitute).to_numpy(), None)})
    return {"harvest_loss_pct": harvest, "substitutes": substitutes[["security_id", "substitute_id", "rank"]],
            "restrictions": restrictions}


ETF_ID, INDEX_ID, ETF_CREATION_UNIT = "ETF00000", "INDEX00", 50000


def _add_index_etf(rng, dates, sec_ids, price_path, funds_frame, positions, cash, extra_daily, model_files,
                   holdings):
    """The sample's index ETF (see ``generate``): its fund row, book, lots, index versions,
    AP orders and shares outstanding."""
    n_sec = len(sec_ids)
    size = max(holdings, 4)
    picks = rng.choice(n_sec, size=size, replace=False)
    weights = _unit_weights(rng.gamma(3.0, 1.0, size=(1, size)))[0]
    nav = 50_000_000.0
    quantity = np.floor(weights * (1 + rng.normal(0, 0.03, size)) * nav * 0.99 / price_path[0][picks])
    etf_row = dict.fromkeys(funds_frame.columns)
    etf_row.update({"fund_id": ETF_ID, "name": "Index ETF 00000", "base_currency": "USD", "policy": "threshold",
                    "frequency": "daily", "abs_band": 0.02, "rel_band": None, "rebalance_to": "target",
                    "min_trade_notional": 2500.0, "cash_buffer": 0.0, "allow_fractional": "false",
                    "model_id": INDEX_ID, "band_level": "security"})
    funds_frame = pd.concat([funds_frame.assign(index_tracking=None, creation_unit=None, custom_baskets=None),
                             pd.DataFrame([{**etf_row, "index_tracking": "true", "creation_unit": ETF_CREATION_UNIT,
                                            "custom_baskets": "true"}])], ignore_index=True)
    held = pd.DataFrame({"fund_id": ETF_ID, "security_id": sec_ids[picks], "quantity": quantity})
    positions = pd.concat([positions, held[held["quantity"] > 0]], ignore_index=True)
    invested = float((quantity * price_path[0][picks]).sum())
    cash = pd.concat([cash, pd.DataFrame([{"fund_id": ETF_ID, "currency": "USD", "amount": round(nav - invested, 2)}])],
                     ignore_index=True)
    # Two lots per holding: an old cheap one and a recent dearer one (in-kind redemptions
    # deliver the cheap one first).
    first = np.floor(quantity * 0.5)
    cost = price_path[0][picks]
    start = dates[0]
    lots = pd.DataFrame({
        "fund_id": ETF_ID, "security_id": np.concatenate([sec_ids[picks]] * 2),
        "lot_id": ["L1"] * size + ["L2"] * size, "quantity": np.concatenate([first, quantity - first]),
        "unit_cost": np.round(np.concatenate([cost * rng.uniform(0.5, 0.8, size), cost * rng.uniform(0.95, 1.1, size)]),
                              4),
        "acquired_date": [(start - dt.timedelta(days=900)).isoformat()] * size
        + [(start - dt.timedelta(days=40)).isoformat()] * size})
    lots = lots[lots["quantity"] > 0]
    extra_daily = dict(extra_daily)
    extra_daily["tax_lots"] = (pd.concat([extra_daily["tax_lots"], lots], ignore_index=True)
                               if "tax_lots" in extra_daily else lots)
    shares = round(nav / 25.0)   # NAV per share about 25
    mine = pd.DataFrame([{"fund_id": ETF_ID, "shares_outstanding": shares}])
    extra_daily["fund_shares"] = (pd.concat([extra_daily["fund_shares"], mine], ignore_index=True)
                                  if "fund_shares" in extra_daily else mine)

    # The index: today's version on the first day; the reconstitution (two constituents out,
    # two in, weights redrawn) announced on the second, effective the next trading day.
    index = pd.DataFrame({"model_id": INDEX_ID, "security_id": sec_ids[picks], "target_weight": weights})
    day0 = model_files.setdefault(0, {})
    day0["model_targets"] = (pd.concat([day0["model_targets"], index], ignore_index=True)
                             if "model_targets" in day0 else index)
    day0["models"] = pd.concat([day0.get("models", pd.DataFrame(columns=["model_id", "name"])),
                                pd.DataFrame([{"model_id": INDEX_ID, "name": "Sample equity index"}])],
                               ignore_index=True)
    if len(dates) >= 2:
        outside = np.setdiff1d(np.arange(n_sec), picks)
        new_picks = np.concatenate([picks[2:], rng.choice(outside, size=2, replace=False)])
        effective = sessions_between(dates[1] + dt.timedelta(days=1), dates[1] + dt.timedelta(days=10))[0]
        announced = pd.DataFrame({"model_id": INDEX_ID, "security_id": sec_ids[new_picks],
                                  "target_weight": _unit_weights(rng.gamma(3.0, 1.0, size=(1, size)))[0],
                                  "effective_date": effective.isoformat()})
        day1 = model_files.setdefault(1, {})
        day1["model_targets"] = (pd.concat([day1["model_targets"], announced], ignore_index=True)
                                 if "model_targets" in day1 else announced)
    # Authorized participants: creations and redemptions, in kind and in cash, both ways.
    orders = [[(2, "in_kind"), (-1, "cash")], [(-3, "in_kind"), (1, "cash")], [(1, "in_kind"), (-2, "in_kind")]]
    # The index level: 1,000 on the first date, moving with its constituents' closes.
    growth = (price_path[:, picks] / price_path[0][picks]) @ weights
    etf_daily = {day: {"creations": pd.DataFrame([{"fund_id": ETF_ID, "units": u, "settlement": s}
                                                   for u, s in orders[day % len(orders)]]),
                       "index_levels": pd.DataFrame({"model_id": [INDEX_ID], "level": [round(1000.0 * growth[day], 4)]})}
                 for day in range(len(dates))}
    return funds_frame, positions, cash, extra_daily, etf_daily


def _unit_weights(raw: np.ndarray) -> np.ndarray:
    """Rows of weights summing to exactly 1 after rounding to 6 decimals."""
    weights = np.round(raw / raw.sum(axis=1, keepdims=True), 6)
    weights[:, -1] += 1 - weights.sum(axis=1)
    return weights


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
