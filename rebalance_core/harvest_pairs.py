"""Open harvests: the (security, substitute) pairs a tax-loss harvest leaves open until its
swap back, and how the night treats them.

``open_harvests`` folds the approved harvest trades into the pairs still open; while a pair
is open its substitute stands in for the security: the pair shares the security's target in
proportion to what each is worth (``split_pair_targets``) and is judged on its bands as one
holding (``judge_pairs``). The harvest and swap back themselves: ``rebalance_core.harvest``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rebalance_core.drift import band_tolerance, fx_to_base
from rebalance_core.schema import WEIGHT_EPS

PAIR_COLUMNS = ["fund_id", "security_id", "substitute_id", "harvested_on"]
# An approved tax trade that names a harvested security (proposal_trade.harvest_of): the
# substitute's buy opens the pair, its sale (the swap back) closes it.
HARVEST_TRADE_COLUMNS = ["as_of_date", "fund_id", "security_id", "side", "harvest_of"]
KEY = ["fund_id", "security_id"]


def empty_pairs() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in PAIR_COLUMNS})


def open_harvests(harvest_trades: pd.DataFrame | None, open_before: pd.DataFrame | None = None) -> pd.DataFrame:
    """The harvests still open (PAIR_COLUMNS) after ``harvest_trades``, the one rule of the
    nightly history read and the replay.

    ``harvest_trades`` (HARVEST_TRADE_COLUMNS): approved tax trades naming a harvested
    security; ``open_before``: pairs known open before them (the replay's yesterday). Per
    (fund, harvested security) the latest of them decides: a buy (the substitute bought,
    ``harvested_on`` its date) leaves the pair open, a sale (the swap back) closes it. On one
    date a buy wins over a sale (a swap back and a new harvest the same night leave it open)."""
    parts = []
    if open_before is not None and len(open_before):
        parts.append(pd.DataFrame({"as_of_date": open_before["harvested_on"].to_numpy(),
                                   "fund_id": open_before["fund_id"].to_numpy(),
                                   "security_id": open_before["substitute_id"].to_numpy(), "side": "BUY",
                                   "harvest_of": open_before["security_id"].to_numpy()}))
    if harvest_trades is not None and len(harvest_trades):
        named = harvest_trades[harvest_trades["harvest_of"].notna()]
        parts.append(named[HARVEST_TRADE_COLUMNS])
    if not parts:
        return empty_pairs()
    events = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    if events.empty:
        return empty_pairs()
    events = events.assign(day=pd.to_datetime(events["as_of_date"]).dt.date,
                           buy_first=(events["side"] != "BUY").astype(int))
    latest = events.sort_values(["fund_id", "harvest_of", "day", "buy_first"], ascending=[True, True, False, True],
                                kind="stable").drop_duplicates(["fund_id", "harvest_of"])
    opened = latest[latest["side"] == "BUY"]
    return pd.DataFrame({"fund_id": opened["fund_id"].to_numpy(dtype=object),
                         "security_id": opened["harvest_of"].to_numpy(dtype=object),
                         "substitute_id": opened["security_id"].to_numpy(dtype=object),
                         "harvested_on": opened["day"].to_numpy(dtype=object)})


def held_pairs(pairs: pd.DataFrame | None, positions: pd.DataFrame) -> pd.DataFrame:
    """Open harvests whose substitute the fund still holds."""
    if pairs is None or pairs.empty:
        return empty_pairs()
    held = positions.loc[positions["quantity"] > 0, KEY].drop_duplicates()
    keys = pd.MultiIndex.from_frame(pairs[["fund_id", "substitute_id"]])
    return pairs[keys.isin(pd.MultiIndex.from_frame(held))].drop_duplicates(KEY).reset_index(drop=True)


def split_pair_targets(targets: pd.DataFrame, pairs: pd.DataFrame, positions: pd.DataFrame,
                       prices: pd.DataFrame, funds: pd.DataFrame, fx_rates: pd.DataFrame | None) -> pd.DataFrame:
    """Targets with each open pair's target (the security's plus the substitute's own, if
    any) shared by the two in proportion to their market values; other rows unchanged."""
    if pairs.empty or targets.empty:
        return targets
    pair_rows = pd.concat([pairs[["fund_id", "security_id"]].assign(member="security", pair=range(len(pairs))),
                           pairs[["fund_id", "substitute_id"]].rename(columns={"substitute_id": "security_id"})
                           .assign(member="substitute", pair=range(len(pairs)))], ignore_index=True)
    values = _market_values(pair_rows, positions, prices, funds, fx_rates)
    weights = targets.set_index(KEY)["target_weight"].groupby(level=[0, 1]).sum()
    pair_rows["target"] = weights.reindex(pd.MultiIndex.from_frame(pair_rows[KEY])).fillna(0.0).to_numpy()
    pair_rows["value"] = values.fillna(0.0).to_numpy()
    total_target = pair_rows.groupby("pair")["target"].transform("sum")
    total_value = pair_rows.groupby("pair")["value"].transform("sum")
    pair_rows["split"] = np.where(total_value > 0, total_target * pair_rows["value"] / total_value.where(
        total_value > 0), np.where(pair_rows["member"] == "substitute", total_target, 0.0))
    extra = [c for c in targets.columns if c not in ("fund_id", "security_id", "target_weight")]
    fund_extra = targets.drop_duplicates("fund_id").set_index("fund_id")[extra] if extra else None
    keys = pd.MultiIndex.from_frame(targets[KEY])
    kept = targets[~keys.isin(pd.MultiIndex.from_frame(pair_rows[KEY]))]
    split = pair_rows[KEY].assign(target_weight=pair_rows["split"].astype("float64"))
    split = split[split["target_weight"] > 0]
    if fund_extra is not None:
        split = split.join(fund_extra, on="fund_id")
    return pd.concat([kept, split.reindex(columns=targets.columns)], ignore_index=True)


def judge_pairs(drift: pd.DataFrame, pairs: pd.DataFrame, funds: pd.DataFrame) -> pd.DataFrame:
    """Drift rows with each open pair judged as one holding: its bands are the fund's
    around the pair's target, shared by the two in proportion to their split targets (so
    each row breaches exactly when the pair does)."""
    if pairs.empty or drift.empty:
        return drift
    members = pd.concat([pairs[KEY].assign(pair=range(len(pairs))),
                         pairs[["fund_id", "substitute_id"]].rename(columns={"substitute_id": "security_id"})
                         .assign(pair=range(len(pairs)))], ignore_index=True)
    rows = drift.reset_index().merge(members, on=KEY, how="inner")
    if rows.empty:
        return drift
    pair_target = rows.groupby("pair")["target_weight"].transform("sum")
    pair_weight = rows.groupby("pair")["current_weight"].transform("sum")
    bands = funds.drop_duplicates("fund_id").set_index("fund_id")
    tolerance = band_tolerance(pair_target, rows["fund_id"].map(bands["abs_band"]).astype("float64"),
                               rows["fund_id"].map(bands["rel_band"]).astype("float64"))
    share = (rows["target_weight"] / pair_target.where(pair_target > 0)).fillna(0.0)
    breached = ((pair_weight - pair_target).abs() > (tolerance + WEIGHT_EPS).fillna(np.inf)) | (
        (pair_target <= 0) & (rows["quantity"] > 0))
    out = drift.copy()
    index = rows["index"].to_numpy()
    out.loc[index, "band_lower"] = (rows["target_weight"] - share * tolerance).to_numpy()
    out.loc[index, "band_upper"] = (rows["target_weight"] + share * tolerance).to_numpy()
    out.loc[index, "breached"] = breached.to_numpy()
    return out


def _market_values(rows, positions, prices, funds, fx_rates) -> pd.Series:
    held = positions.groupby(KEY)["quantity"].sum()
    qty = held.reindex(pd.MultiIndex.from_frame(rows[KEY])).fillna(0.0).to_numpy()
    px = prices.drop_duplicates("security_id").set_index("security_id")
    base = rows["fund_id"].map(funds.drop_duplicates("fund_id").set_index("fund_id")["base_currency"])
    rate = fx_to_base(rows["security_id"].map(px["currency"]), base, fx_rates)
    return pd.Series(qty * rows["security_id"].map(px["close_price"]).astype("float64").to_numpy() * rate.to_numpy(),
                     index=rows.index)
