"""The sample's book, drawn: securities and their prices, funds and their policies, targets,
model portfolios, starting positions, costs, lots and flows; and the writing of one day's
folder. ``rebalance_pipeline.sample.generate`` calls these in a fixed order (the random
draws, and so the files, depend on it).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from rebalance_core.inputs import REGISTRY
from rebalance_pipeline.sample_etf import unit_weights, wealth_rules

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


def universe(rng: np.random.Generator, n_sec: int, n_days: int):
    """The securities: ids, asset classes, lot sizes, and their closes over ``n_days`` (a random walk)."""
    sec_ids = np.array([f"SEC{i:05d}" for i in range(n_sec)])
    asset_class = rng.choice(["equity", "fixed_income", "real_estate", "commodity"], n_sec, p=[.55, .3, .1, .05])
    lot_size = np.where(rng.random(n_sec) < 0.1, 100, 1)
    start_price = np.round(rng.lognormal(mean=4.0, sigma=0.8, size=n_sec), 2) + 1.0
    daily_vol = np.where(asset_class == "fixed_income", 0.004, 0.015)
    shocks = rng.normal(0.0002, daily_vol, size=(n_days, n_sec))
    shocks[0] = 0.0
    price_path = np.round(start_price * np.exp(np.cumsum(shocks, axis=0)), 4)
    return sec_ids, asset_class, lot_size, price_path


def fund_book(rng: np.random.Generator, funds: int):
    """The funds: ids, funds.csv (policies from POLICY_MIX) and each fund's starting NAV."""
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
    return fund_ids, funds_frame, nav0


def fund_targets(rng: np.random.Generator, funds: int, holdings: int, n_sec: int):
    """Each fund's ``holdings`` distinct securities (a random window of a shuffled universe
    keeps it vectorized and distinct), their target weights and the fund's cash target."""
    offsets = rng.integers(0, n_sec, size=funds)
    picks = (offsets[:, None] + np.arange(holdings)[None, :] * max(1, n_sec // holdings)) % n_sec
    raw_w = rng.gamma(2.0, 1.0, size=(funds, holdings))
    cash_target = np.where(rng.random(funds) < 0.3, 0.02, 0.0)
    weights = raw_w / raw_w.sum(axis=1, keepdims=True) * (1 - cash_target)[:, None]
    weights = np.round(weights, 6)
    weights[:, -1] += (1 - cash_target) - weights.sum(axis=1)  # exact sum after rounding
    return picks, weights, cash_target


def models_of(mrng: np.random.Generator, models: int, model_share: float, model_change_day: int | None,
            asset_class_share: float, days: int, sec_ids: np.ndarray, picks: np.ndarray, weights: np.ndarray,
            cash_target: np.ndarray, funds_frame: pd.DataFrame) -> tuple[dict[int, dict[str, pd.DataFrame]], np.ndarray]:
    """The model portfolios (a generator of their own: the draws of a book without models stay
    as they were); their followers take the model's securities and weights (``picks``,
    ``weights``, ``cash_target`` and ``funds_frame`` changed in place). The model files by day,
    and which funds follow a model."""
    funds, holdings = picks.shape
    n_sec = len(sec_ids)
    model_ids = np.array([f"MODEL{i:02d}" for i in range(models)])
    model_offsets = mrng.integers(0, n_sec, size=models)
    model_picks = (model_offsets[:, None] + np.arange(holdings)[None, :] * max(1, n_sec // holdings)) % n_sec
    model_weights = unit_weights(mrng.gamma(2.0, 1.0, size=(models, holdings)))
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

    model_files = {0: {"model_targets": model_frame(model_ids, model_picks, model_weights),
                       "models": pd.DataFrame({"model_id": model_ids,
                                               "name": [f"Model {chr(65 + i % 26)}{i // 26 or ''}"
                                                        for i in range(models)]})}}
    change_day = model_change_day if model_change_day is not None else (days - 1 if days > 1 else None)
    if change_day is not None and 0 < change_day < days:
        model_files[change_day] = {"model_targets": model_frame(
            model_ids[:1], model_picks[:1], unit_weights(mrng.gamma(2.0, 1.0, size=(1, holdings))))}
    return model_files, followers


def targets_frame(fund_ids: np.ndarray, sec_ids: np.ndarray, picks: np.ndarray, weights: np.ndarray,
                   cash_target: np.ndarray, followers: np.ndarray) -> pd.DataFrame:
    """targets.csv: the funds' own targets (a model's followers have none) and their cash rows."""
    holdings = picks.shape[1]
    targets = pd.DataFrame({"fund_id": np.repeat(fund_ids, holdings), "security_id": sec_ids[picks.ravel()],
                            "target_weight": weights.ravel()})
    cash_rows = pd.DataFrame({"fund_id": fund_ids[cash_target > 0], "security_id": "CASH",
                              "target_weight": cash_target[cash_target > 0]})
    targets = pd.concat([targets, cash_rows], ignore_index=True).sort_values(["fund_id", "security_id"])
    if followers.any():
        targets = targets[~targets["fund_id"].isin(fund_ids[followers])]
    return targets


def starting_book(rng: np.random.Generator, fund_ids: np.ndarray, sec_ids: np.ndarray, picks: np.ndarray,
                   weights: np.ndarray, cash_target: np.ndarray, nav0: np.ndarray, price_path: np.ndarray,
                   fund_drift: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Positions and cash, off target by a fund-specific amount (some funds start out of band)."""
    funds, holdings = picks.shape
    tilt = rng.normal(0, fund_drift, size=(funds, holdings)) * rng.random((funds, 1))
    held_w = np.clip(weights * (1 + tilt), 0, None)
    held_w = held_w / held_w.sum(axis=1, keepdims=True) * (1 - cash_target)[:, None] * 0.985
    quantity = np.floor(held_w * nav0[:, None] / price_path[0][picks])
    positions = pd.DataFrame({"fund_id": np.repeat(fund_ids, holdings), "security_id": sec_ids[picks.ravel()],
                              "quantity": quantity.ravel()})
    positions = positions[positions["quantity"] > 0]
    invested = (quantity * price_path[0][picks]).sum(axis=1)
    cash = pd.DataFrame({"fund_id": fund_ids, "currency": "USD", "amount": np.round(nav0 - invested, 2)})
    return positions, cash


def trading_costs_lots_and_flows(rng: np.random.Generator, start: dt.date, fund_ids: np.ndarray,
                                  sec_ids: np.ndarray, asset_class: np.ndarray, price_path: np.ndarray,
                                  nav0: np.ndarray, positions: pd.DataFrame, funds_frame: pd.DataFrame,
                                  securities_frame: pd.DataFrame, tax_lot_share: float,
                                  flow_share: float) -> dict[str, pd.DataFrame]:
    """What the richer policies use: spreads and volumes (``securities_frame``), commissions
    and lot methods (``funds_frame``), both changed in place; tax lots and pending flows, the
    daily files returned."""
    funds, n_sec = len(fund_ids), len(sec_ids)
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
    flowing = fund_ids[rng.random(funds) < flow_share]
    return {"tax_lots": lots[lots["quantity"] > 0][
                ["fund_id", "security_id", "lot_id", "quantity", "unit_cost", "acquired_date"]],
            "flows": pd.DataFrame({
                "fund_id": flowing,
                "amount": np.round(pd.Series(nav0, index=fund_ids)[flowing].to_numpy()
                                   * rng.uniform(-0.08, 0.08, len(flowing)), 2)})}


def wealth_and_review(seed: int, fund_ids: np.ndarray, sec_ids: np.ndarray, asset_class: np.ndarray,
                       positions: pd.DataFrame, tax_lots: pd.DataFrame, restriction_share: float,
                       funds_frame: pd.DataFrame, model_files: dict[int, dict[str, pd.DataFrame]]) -> None:
    """The wealth book's rules (harvesting, restrictions, substitutes) and its review rules:
    ``funds_frame`` and the first day's ``model_files`` changed in place."""
    funds = len(fund_ids)
    wealth = wealth_rules(np.random.default_rng([seed, 11]), fund_ids, sec_ids, asset_class, positions,
                           tax_lots, restriction_share)
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


def write_day(folder: Path, as_of: dt.date, sec_ids: np.ndarray, closes: np.ndarray, positions: pd.DataFrame,
               cash: pd.DataFrame, extra_daily: dict[str, pd.DataFrame], index_levels: list[pd.DataFrame],
               first_day: dict[str, pd.DataFrame], model_files: dict[str, pd.DataFrame],
               etf_files: dict[str, pd.DataFrame]) -> None:
    """One trading day's folder, its files in the order the sample always wrote them."""
    stamp = as_of.isoformat()
    write_csv(pd.DataFrame({"as_of_date": stamp, "security_id": sec_ids, "close_price": closes,
                            "currency": "USD"}), folder / "prices.csv")
    write_csv(positions.assign(as_of_date=stamp)[["as_of_date", "fund_id", "security_id", "quantity"]],
              folder / "positions.csv")
    write_csv(cash.assign(as_of_date=stamp)[["as_of_date", "fund_id", "currency", "amount"]], folder / "cash.csv")
    for stem, frame in extra_daily.items():
        write_csv(frame, folder / f"{stem}.csv")
    levels = index_levels + ([etf_files["index_levels"]] if "index_levels" in etf_files else [])
    if levels:
        write_csv(pd.concat(levels, ignore_index=True), folder / "index_levels.csv")
    for stem, frame in first_day.items():
        write_csv(frame, folder / f"{stem}.csv")
    for stem, frame in model_files.items():
        write_csv(frame, folder / f"{stem}.csv")
    for stem, frame in etf_files.items():
        if stem != "index_levels":
            write_csv(frame, folder / f"{stem}.csv")
