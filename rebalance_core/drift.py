"""Drift: each fund's current weights against its targets, with its bands.

``compute_drift`` returns one row per (fund, security held or targeted) plus one ``CASH``
row per fund, all funds at once. NAV is the market value of all holdings plus cash in the
fund's base currency; a weight is market value / NAV; drift is current minus target.

Bands follow the data contract: ``abs_band`` is a tolerance in weight units, ``rel_band``
a tolerance relative to the target; a holding breaches when it is outside either band that
is set (so 5/25 is ``min(0.05, 0.25 × target)``). A held security with no target breaches
whenever it is held. Cash is the residual and never breaches by itself.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from rebalance_core.schema import BAND_LEVEL_ASSET_CLASS, CASH, WEIGHT_EPS

DRIFT_COLUMNS = [
    "as_of_date", "fund_id", "security_id", "quantity", "price", "currency", "fx_rate",
    "market_value", "current_weight", "target_weight", "drift", "band_lower", "band_upper",
    "breached",
]

CLASS_DRIFT_COLUMNS = [
    "as_of_date", "fund_id", "asset_class", "current_weight", "target_weight", "drift", "band_lower",
    "band_upper", "breached",
]


def fx_to_base(currency: pd.Series, base_currency: pd.Series, fx_rates: pd.DataFrame | None) -> pd.Series:
    """Rate converting one unit of ``currency`` into ``base_currency``, row by row.

    Same currency (or an unknown one, read as the base) is 1; a pair missing from
    ``fx_rates`` is NaN, which the fault rules turn into a blocked fund.
    """
    same = currency.isna() | (currency == base_currency)
    rate = pd.Series(np.where(same, 1.0, np.nan), index=currency.index, dtype="float64")
    if fx_rates is not None and len(fx_rates) and (~same).any():
        lookup = fx_rates.drop_duplicates(["currency", "base_currency"]).set_index(["currency", "base_currency"])["rate"]
        keys = pd.MultiIndex.from_arrays([currency[~same], base_currency[~same]])
        rate[~same] = lookup.reindex(keys).to_numpy(dtype="float64")
    return rate


def band_tolerance(target: pd.Series, abs_band: pd.Series, rel_band: pd.Series) -> pd.Series:
    """Half-width of the no-trade band: the tighter of the bands that are set (NaN: none set)."""
    rel_tol = rel_band * target
    return pd.concat([abs_band, rel_tol], axis=1).min(axis=1, skipna=True)


def compute_drift(
    as_of: dt.date,
    funds: pd.DataFrame,
    targets: pd.DataFrame,
    positions: pd.DataFrame,
    prices: pd.DataFrame,
    cash: pd.DataFrame,
    fx_rates: pd.DataFrame | None = None,
    securities: pd.DataFrame | None = None,
    asset_class_bands: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Drift rows for every fund in ``funds`` (securities held or targeted, plus CASH).

    ``asset_class_bands`` (asset_class, abs_band, rel_band) overrides the fund's bands for
    the securities of that asset class (``securities`` says which class each one is in);
    a band left empty there keeps the fund's.
    """
    fund_cols = funds[["fund_id", "base_currency", "abs_band", "rel_band"]]
    fund_ids = fund_cols["fund_id"]
    rows = _holding_rows(fund_cols, targets, positions, prices, fx_rates, securities, asset_class_bands)
    cash_base = _cash_in_base(cash, fund_cols, fx_rates)
    nav = _fund_navs(rows, cash_base, fund_ids)
    rows = _judge_bands(rows, nav)
    cash_targets = targets.loc[targets["security_id"] == CASH].groupby("fund_id")["target_weight"].sum()
    out = pd.concat([rows, _cash_rows(fund_cols, cash_base, cash_targets, nav)], ignore_index=True, sort=False)
    out["as_of_date"] = as_of
    out = out.sort_values(["fund_id", "security_id"], kind="stable", ignore_index=True)
    return out[DRIFT_COLUMNS]


def _holding_rows(fund_cols, targets, positions, prices, fx_rates, securities, asset_class_bands) -> pd.DataFrame:
    """One row per (fund, security) held or targeted: quantity, target, price, the bands in
    force (the asset class's where it sets one) and the market value in base currency."""
    fund_ids = fund_cols["fund_id"]
    security_targets = targets.loc[(targets["security_id"] != CASH) & targets["fund_id"].isin(fund_ids),
                                   ["fund_id", "security_id", "target_weight"]]
    security_targets = security_targets.astype({"target_weight": "float64"}).groupby(["fund_id", "security_id"], as_index=False, sort=False)["target_weight"].sum()
    held = positions.loc[positions["fund_id"].isin(fund_ids), ["fund_id", "security_id", "quantity"]]
    held = held.astype({"quantity": "float64"}).groupby(["fund_id", "security_id"], as_index=False,
                                                         sort=False)["quantity"].sum()

    rows = held.merge(security_targets, on=["fund_id", "security_id"], how="outer", sort=False)
    rows["quantity"] = rows["quantity"].fillna(0.0)
    rows["target_weight"] = rows["target_weight"].fillna(0.0)

    # A security priced twice is a fault (validation blocks it); take the first price so the
    # join stays one row per holding.
    px = prices.drop_duplicates("security_id")[["security_id", "close_price", "currency"]]
    rows = rows.merge(px, on="security_id", how="left", sort=False).rename(columns={"close_price": "price"})
    rows = rows.merge(fund_cols, on="fund_id", how="left", sort=False)
    if asset_class_bands is not None and len(asset_class_bands) and securities is not None and len(securities):
        asset_class = rows["security_id"].map(securities.drop_duplicates("security_id").set_index("security_id")[
            "asset_class"])
        overrides = asset_class_bands.drop_duplicates("asset_class").set_index("asset_class")
        for band in ("abs_band", "rel_band"):
            override = asset_class.map(overrides[band]) if band in overrides else None
            if override is not None:
                rows[band] = override.astype("float64").fillna(rows[band])
    rows["fx_rate"] = fx_to_base(rows["currency"], rows["base_currency"], fx_rates)
    rows["market_value"] = rows["quantity"] * rows["price"] * rows["fx_rate"]
    # Nothing held is worth exactly nothing, even without a price.
    rows.loc[rows["quantity"] == 0, "market_value"] = 0.0
    return rows


def _cash_in_base(cash: pd.DataFrame, fund_cols: pd.DataFrame, fx_rates) -> pd.Series:
    """Cash per fund in base currency (0 without a row; NaN when a row has no rate)."""
    fund_ids = fund_cols["fund_id"]
    cash_rows = cash.loc[cash["fund_id"].isin(fund_ids), ["fund_id", "currency", "amount"]].merge(
        fund_cols[["fund_id", "base_currency"]], on="fund_id", how="left")
    cash_rows["value"] = cash_rows["amount"] * fx_to_base(cash_rows["currency"], cash_rows["base_currency"], fx_rates)
    # min_count=1 keeps a fund whose only cash row has no rate at NaN rather than 0.
    cash_base = cash_rows.groupby("fund_id")["value"].sum(min_count=1).reindex(fund_ids).fillna(0.0)
    cash_base[cash_rows.loc[cash_rows["value"].isna(), "fund_id"].unique()] = np.nan
    return cash_base


def _fund_navs(rows: pd.DataFrame, cash_base: pd.Series, fund_ids: pd.Series) -> pd.Series:
    """NAV per fund; NaN when a holding has no value or the fund is worth nothing."""
    invested = rows.groupby("fund_id", sort=False)["market_value"].sum(min_count=0)
    # A NaN market value of a held security makes the fund's NAV unknown (NaN), not smaller.
    has_unknown = rows.loc[rows["market_value"].isna(), "fund_id"].unique()
    nav = invested.reindex(fund_ids).fillna(0.0).to_numpy() + cash_base.to_numpy()
    nav = pd.Series(nav, index=fund_ids.to_numpy())
    nav[nav.index.isin(has_unknown)] = np.nan
    nav[nav <= 0] = np.nan
    return nav


def _judge_bands(rows: pd.DataFrame, nav: pd.Series) -> pd.DataFrame:
    """Weights, drift, band edges and the verdict of each holding."""
    fund_nav = rows["fund_id"].map(nav)
    rows["current_weight"] = rows["market_value"] / fund_nav
    rows["drift"] = rows["current_weight"] - rows["target_weight"]
    tolerance = band_tolerance(rows["target_weight"], rows["abs_band"], rows["rel_band"])
    rows["band_lower"] = rows["target_weight"] - tolerance
    rows["band_upper"] = rows["target_weight"] + tolerance
    outside = rows["drift"].abs() > (tolerance + WEIGHT_EPS).fillna(np.inf)
    unwanted = (rows["target_weight"] <= 0) & (rows["quantity"] > 0)
    rows["breached"] = outside.fillna(False).astype(bool) | unwanted
    return rows


def _cash_rows(fund_cols: pd.DataFrame, cash_base: pd.Series, cash_targets: pd.Series, nav: pd.Series) -> pd.DataFrame:
    """The CASH row of each fund (never breached: the buffer is sizing's business)."""
    fund_ids = fund_cols["fund_id"]
    cash_frame = pd.DataFrame({
        "fund_id": fund_ids.to_numpy(),
        "security_id": CASH,
        "quantity": cash_base.to_numpy(),
        "price": 1.0,
        "currency": fund_cols["base_currency"].to_numpy(),
        "fx_rate": 1.0,
        "market_value": cash_base.to_numpy(),
        "target_weight": cash_targets.reindex(fund_ids).fillna(0.0).to_numpy(),
        "breached": False,
    })
    cash_frame["current_weight"] = cash_frame["market_value"] / nav.to_numpy()
    cash_frame["drift"] = cash_frame["current_weight"] - cash_frame["target_weight"]
    cash_frame["band_lower"] = np.nan
    cash_frame["band_upper"] = np.nan
    return cash_frame


def summarize_funds(drift: pd.DataFrame) -> pd.DataFrame:
    """One row per fund: nav, cash, cash weight, max |drift| and breaches over securities.

    A fund with any holding it cannot value (no price, no fx rate) has an unknown NAV (NaN).
    """
    fund = drift["fund_id"]
    nav = drift.groupby(fund, sort=False)["market_value"].sum()
    unknown = drift["market_value"].isna().groupby(fund, sort=False).any()
    nav[unknown | (nav <= 0)] = np.nan

    is_security = drift["security_id"] != CASH
    securities = drift[is_security]
    by_fund = securities.assign(abs_drift=securities["drift"].abs()).groupby("fund_id", sort=False).agg(
        max_abs_drift=("abs_drift", "max"), breach_count=("breached", "sum"))
    cash = drift.loc[~is_security].set_index("fund_id")[["market_value", "current_weight"]]
    summary = cash.rename(columns={"market_value": "cash", "current_weight": "cash_weight"})
    summary["nav"] = nav
    summary = summary.join(by_fund, how="left")
    summary["breach_count"] = summary["breach_count"].fillna(0).astype("int64")
    summary["breached"] = summary["breach_count"] > 0
    return summary.rename_axis("fund_id").reset_index()


def security_classes(security_ids: pd.Series, securities: pd.DataFrame | None) -> pd.Series:
    """The asset class of each security (securities.csv); a security without one is its own
    class, and CASH is the class ``CASH``."""
    # Worked out once per distinct security, then spread over the rows.
    codes, uniques = pd.factorize(security_ids, sort=False)
    uniques = pd.Series(np.asarray(uniques, dtype=object))
    if securities is not None and len(securities) and "asset_class" in securities:
        classes = uniques.map(securities.drop_duplicates("security_id").set_index("security_id")["asset_class"])
    else:
        classes = pd.Series(np.nan, index=uniques.index, dtype="object")
    classes = classes.astype("object")
    blank = classes.isna() | (classes.astype(str).str.strip() == "")
    classes = classes.where(~blank, uniques).where(uniques != CASH, CASH).to_numpy(dtype=object)
    out = np.where(codes >= 0, classes[np.clip(codes, 0, None)] if len(classes) else None, None)
    return pd.Series(out, index=security_ids.index, dtype="object")


def band_levels(funds: pd.DataFrame) -> pd.Series:
    """``band_level`` per fund (index fund_id): ``security`` unless funds.csv says ``asset_class``."""
    ids = funds.drop_duplicates("fund_id")
    level = ids["band_level"] if "band_level" in ids else pd.Series(None, index=ids.index, dtype="object")
    level = level.astype("object").where(level.notna(), "security").astype(str).str.strip().str.lower()
    level = level.where(level != "", "security")
    return pd.Series(level.to_numpy(), index=ids["fund_id"].to_numpy())


def compute_class_drift(as_of: dt.date, drift: pd.DataFrame, funds: pd.DataFrame,
                        securities: pd.DataFrame | None = None,
                        asset_class_bands: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per fund and asset class: the class's total weight against the sum of its targets,
    with the class's bands (asset_classes.csv when it sets one, else the fund's), for every
    fund whatever its ``band_level``. A class held with no target breaches; CASH never does."""
    if drift.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in CLASS_DRIFT_COLUMNS})
    # One integer key per (fund, class) and bincount sums: a groupby on two string keys
    # costs several times more at millions of rows.
    fund_codes, fund_values = pd.factorize(drift["fund_id"], sort=False)
    class_codes, class_values = pd.factorize(security_classes(drift["security_id"], securities), sort=False)
    key = fund_codes.astype("int64") * len(class_values) + class_codes
    keys, group = np.unique(key, return_inverse=True)
    weight = drift["current_weight"].to_numpy(dtype="float64")
    known = ~np.isnan(weight)
    current = np.bincount(group, weights=np.where(known, weight, 0.0), minlength=len(keys))
    current[np.bincount(group, weights=known, minlength=len(keys)) == 0] = np.nan
    out = pd.DataFrame({
        "fund_id": np.asarray(fund_values, dtype=object)[keys // len(class_values)],
        "asset_class": np.asarray(class_values, dtype=object)[keys % len(class_values)],
        "current_weight": current,
        "target_weight": np.bincount(group, weights=drift["target_weight"].to_numpy(dtype="float64"),
                                     minlength=len(keys)),
        "held": np.bincount(group, weights=(drift["quantity"].to_numpy(dtype="float64") > 0),
                            minlength=len(keys)) > 0,
    })
    fund_bands = funds.drop_duplicates("fund_id").set_index("fund_id")[["abs_band", "rel_band"]].astype("float64")
    for band in ("abs_band", "rel_band"):
        out[band] = out["fund_id"].map(fund_bands[band])
        if asset_class_bands is not None and len(asset_class_bands) and band in asset_class_bands:
            override = asset_class_bands.drop_duplicates("asset_class").set_index("asset_class")[band]
            out[band] = out["asset_class"].map(override).astype("float64").fillna(out[band])
    out["drift"] = out["current_weight"] - out["target_weight"]
    tolerance = band_tolerance(out["target_weight"], out["abs_band"], out["rel_band"])
    is_cash = out["asset_class"] == CASH
    out["band_lower"] = (out["target_weight"] - tolerance).where(~is_cash)
    out["band_upper"] = (out["target_weight"] + tolerance).where(~is_cash)
    outside = out["drift"].abs() > (tolerance + WEIGHT_EPS).fillna(np.inf)
    unwanted = (out["target_weight"] <= 0) & out["held"]
    out["breached"] = (outside.fillna(False).astype(bool) | unwanted) & ~is_cash
    out["as_of_date"] = as_of
    out = out.sort_values(["fund_id", "asset_class"], kind="stable", ignore_index=True)
    return out[CLASS_DRIFT_COLUMNS]


def apply_class_bands(drift: pd.DataFrame, summary: pd.DataFrame, class_drift: pd.DataFrame,
                      funds: pd.DataFrame, securities: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For funds with ``band_level = asset_class``: a security breaches when its class does,
    and the fund's breaches are its breaching classes. Other funds are left as they are."""
    levels = band_levels(funds)
    by_class = levels.index[levels == BAND_LEVEL_ASSET_CLASS]
    if len(by_class) == 0 or drift.empty:
        return drift, summary
    drift = drift.copy()
    on_class = drift["fund_id"].isin(by_class) & (drift["security_id"] != CASH)
    classes = security_classes(drift.loc[on_class, "security_id"], securities)
    breached = class_drift.set_index(["fund_id", "asset_class"])["breached"]
    keys = pd.MultiIndex.from_arrays([drift.loc[on_class, "fund_id"], classes])
    drift.loc[on_class, "breached"] = breached.reindex(keys).fillna(False).to_numpy(dtype=bool)
    count = class_drift[class_drift["fund_id"].isin(by_class)].groupby("fund_id")["breached"].sum()
    summary = summary.copy()
    mask = summary["fund_id"].isin(by_class)
    summary.loc[mask, "breach_count"] = summary.loc[mask, "fund_id"].map(count).fillna(0).astype("int64")
    summary["breached"] = summary["breach_count"] > 0
    return drift, summary
