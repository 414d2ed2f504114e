"""The sample's wealth book and index ETFs: harvesting and restriction rules, an index ETF
on its own index model (``index_etf``) and one with creations, redemptions and an index
reconstitution (``add_index_etf``). Called by ``rebalance_pipeline.sample.generate`` only,
each with a random generator of its own (the other files' draws stay as they were).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from rebalance_core.calendar import sessions_between


def index_etf(rng: np.random.Generator, sec_ids: np.ndarray, price_path: np.ndarray,
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


def wealth_rules(rng: np.random.Generator, fund_ids: np.ndarray, sec_ids: np.ndarray, asset_class: np.ndarray,
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


def add_index_etf(rng, dates, sec_ids, price_path, funds_frame, positions, cash, extra_daily, model_files,
                   holdings):
    """The sample's index ETF (see ``generate``): its fund row, book, lots, index versions,
    AP orders and shares outstanding."""
    n_sec = len(sec_ids)
    size = max(holdings, 4)
    picks = rng.choice(n_sec, size=size, replace=False)
    weights = unit_weights(rng.gamma(3.0, 1.0, size=(1, size)))[0]
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
                                  "target_weight": unit_weights(rng.gamma(3.0, 1.0, size=(1, size)))[0],
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


def unit_weights(raw: np.ndarray) -> np.ndarray:
    """Rows of weights summing to exactly 1 after rounding to 6 decimals."""
    weights = np.round(raw / raw.sum(axis=1, keepdims=True), 6)
    weights[:, -1] += 1 - weights.sum(axis=1)
    return weights
