"""Model portfolios: which targets each fund follows on a date, and when they changed.

A model (model_targets.csv) is a list of weights shared by every fund whose funds.csv row
names it in ``model_id``. Its history is a frame of versions: each row carries the date of
the folder that brought it (``valid_from``) and an optional ``effective_date``; a version is
in force from the later of the two (an index change announced ahead is kept, not applied
early), and replaces all of that model's rows. The version in force on a date is, per
model, the one with the latest start on or before it (ties: the latest announcement).

Funds without a model keep their own targets.csv rows. Everything here is a join or a
groupby over all funds and models at once.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from rebalance_core.schema import WEIGHT_EPS

MODEL_HISTORY_COLUMNS = ["model_id", "security_id", "target_weight", "valid_from", "effective_date", "source_row"]
TARGET_COLUMNS = ["fund_id", "security_id", "target_weight"]


def fund_models(funds: pd.DataFrame) -> pd.Series:
    """``model_id`` per fund (index fund_id); NaN for a fund with its own targets."""
    if "model_id" not in funds:
        return pd.Series(np.nan, index=pd.Index(funds["fund_id"].unique(), name="fund_id"), dtype="object")
    ids = funds.drop_duplicates("fund_id").set_index("fund_id")["model_id"]
    ids = ids.astype("object").where(ids.notna(), None)
    blank = ids.isna() | (ids.astype(str).str.strip() == "")
    return ids.where(~blank, np.nan).astype("object")


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, errors="coerce").dt.normalize()


def models_in_force(as_of: dt.date, model_targets: pd.DataFrame | None) -> pd.DataFrame:
    """Rows of each model's version in force on ``as_of`` (MODEL_HISTORY_COLUMNS)."""
    if model_targets is None or model_targets.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c == "target_weight" else "object")
                             for c in MODEL_HISTORY_COLUMNS})
    history = model_targets.copy()
    if "effective_date" not in history:
        history["effective_date"] = None
    announced = _dates(history["valid_from"])
    effective = _dates(history["effective_date"])
    # One start per version: the latest effective date its rows name, never before the folder's date.
    version_effective = effective.groupby([history["model_id"], announced]).transform("max")
    start = np.maximum(announced, version_effective.fillna(announced))
    history = history.assign(_announced=announced, _start=start)
    history = history[history["_start"] <= pd.Timestamp(as_of)]
    if history.empty:
        return history.drop(columns=["_announced", "_start"]).reindex(columns=MODEL_HISTORY_COLUMNS)
    latest = history.sort_values(["model_id", "_start", "_announced"]).groupby("model_id")[
        ["_start", "_announced"]].last()
    keys = pd.MultiIndex.from_frame(history[["model_id", "_start", "_announced"]])
    chosen = pd.MultiIndex.from_arrays([latest.index, latest["_start"], latest["_announced"]])
    out = history[keys.isin(chosen)]
    return out.drop(columns=["_announced", "_start"]).reindex(columns=MODEL_HISTORY_COLUMNS).reset_index(drop=True)


def targets_in_force(as_of: dt.date, funds: pd.DataFrame, fund_targets: pd.DataFrame,
                     model_targets: pd.DataFrame | None) -> pd.DataFrame:
    """Each fund's targets on ``as_of``: its model's version in force, or its own rows.

    Returns fund_id, security_id, target_weight and ``model_id`` (None for own targets). A
    fund with a model takes the model's rows only (its own rows, if any, are a fault that
    validation reports); a fund whose model has no version in force gets no rows (and is
    blocked by validation).
    """
    models = fund_models(funds)
    own = fund_targets[~fund_targets["fund_id"].isin(models.index[models.notna()])]
    own = own[TARGET_COLUMNS].assign(model_id=None)
    followers = models.dropna()
    if followers.empty:
        return own.reset_index(drop=True)
    in_force = models_in_force(as_of, model_targets)
    followed = pd.DataFrame({"fund_id": followers.index.to_numpy(), "model_id": followers.to_numpy()}).merge(
        in_force[["model_id", "security_id", "target_weight"]], on="model_id", how="inner")
    followed["target_weight"] = followed["target_weight"].astype("float64")
    return pd.concat([own, followed[[*TARGET_COLUMNS, "model_id"]]], ignore_index=True)


def changed_targets(current: pd.DataFrame, previous: pd.DataFrame | None) -> pd.Index:
    """Funds whose targets differ from those in force on their previous business date.

    Only funds present in ``previous`` can change (a fund new tonight has nothing to compare
    with). A security missing on one side counts with weight 0; CASH rows count too.
    """
    if previous is None or previous.empty or current.empty:
        return pd.Index([], name="fund_id")
    before = previous[previous["fund_id"].isin(current["fund_id"])]
    if before.empty:
        return pd.Index([], name="fund_id")
    key = ["fund_id", "security_id"]
    now = current[current["fund_id"].isin(before["fund_id"])].groupby(key)["target_weight"].sum()
    then = before.groupby(key)["target_weight"].sum()
    both = pd.concat([now.rename("now"), then.rename("then")], axis=1).fillna(0.0)
    moved = (both["now"] - both["then"]).abs() > WEIGHT_EPS
    funds = moved.groupby(level="fund_id").any()
    return pd.Index(funds.index[funds.to_numpy()], name="fund_id")
