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


def isin_ids(ids: pd.Series, values) -> np.ndarray:
    """``ids.isin(values)`` for string ids, by Arrow's hash set: pandas' own ``isin`` on its
    Arrow strings converts the values one by one in Python (10x slower at 100,000 funds)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(ids) == 0 or len(values) == 0:
        return np.zeros(len(ids), dtype=bool)
    if isinstance(values, (set, frozenset, list, tuple)):
        values = pd.Series(list(values), dtype="object")
    value_set = pc.unique(pa.array(values, from_pandas=True).cast(pa.string()))
    found = pc.is_in(pa.array(ids, from_pandas=True).cast(pa.string()), value_set=value_set)
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False).astype(bool)


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
    own = fund_targets[~isin_ids(fund_targets["fund_id"], models.index[models.notna()])]
    own = own[TARGET_COLUMNS].assign(model_id=None)
    followers = models.dropna()
    if followers.empty:
        return own.reset_index(drop=True)
    in_force = models_in_force(as_of, model_targets)
    # Each follower gets its model's rows by position (np.repeat), not by a join on strings:
    # a few dozen models spread over a hundred thousand funds.
    model_codes, model_values = pd.factorize(in_force["model_id"], sort=False)
    order = np.argsort(model_codes, kind="stable")
    counts = np.bincount(model_codes, minlength=len(model_values)) if len(model_values) else np.zeros(0, "int64")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype("int64") if len(counts) else counts
    fund_model = pd.Index(model_values).get_indexer(followers.to_numpy())
    known = fund_model >= 0
    fund_model = fund_model[known]
    n = counts[fund_model] if len(fund_model) else np.zeros(0, "int64")
    offsets = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    rows = order[np.repeat(starts[fund_model], n) + offsets] if len(offsets) else np.zeros(0, "int64")
    followed = pd.DataFrame({
        "fund_id": np.repeat(followers.index.to_numpy()[known], n),
        "security_id": in_force["security_id"].take(rows).reset_index(drop=True),
        "target_weight": in_force["target_weight"].to_numpy(dtype="float64")[rows],
        "model_id": np.repeat(followers.to_numpy()[known], n),
    })
    return pd.concat([own, followed], ignore_index=True) if len(own) else followed


def changed_targets(current: pd.DataFrame, previous: pd.DataFrame | None) -> pd.Index:
    """Funds whose targets differ from those in force on their previous business date.

    Only funds present in ``previous`` can change (a fund new tonight has nothing to compare
    with). A security missing on one side counts with weight 0; CASH rows count too.
    """
    if previous is None or previous.empty or current.empty:
        return pd.Index([], name="fund_id")
    before = previous[isin_ids(previous["fund_id"], current["fund_id"])]
    if before.empty:
        return pd.Index([], name="fund_id")
    now = current[isin_ids(current["fund_id"], before["fund_id"])]
    # Tonight's weights minus the previous ones, summed per (fund, security) with integer keys
    # (a groupby on two string columns costs several times more at millions of rows).
    fund = pd.concat([now["fund_id"], before["fund_id"]], ignore_index=True)
    security = pd.concat([now["security_id"], before["security_id"]], ignore_index=True)
    weight = np.concatenate([now["target_weight"].to_numpy(dtype="float64"),
                             -before["target_weight"].to_numpy(dtype="float64")])
    fund_codes, fund_values = pd.factorize(fund, sort=False)
    security_codes, security_values = pd.factorize(security, sort=False)
    keys, group = np.unique(fund_codes.astype("int64") * max(len(security_values), 1) + security_codes,
                            return_inverse=True)
    difference = np.bincount(group, weights=np.nan_to_num(weight), minlength=len(keys))
    moved = keys[np.abs(difference) > WEIGHT_EPS] // max(len(security_values), 1)
    return pd.Index(np.asarray(fund_values, dtype=object)[np.unique(moved)], name="fund_id")
