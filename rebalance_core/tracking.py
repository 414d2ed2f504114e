"""Tracking: how closely a fund follows its index, realized and ex ante, all funds at once.

Which funds get a ``fund_tracking`` row on a night: a fund on a model (``model_id``) whose
model has an index_levels.csv row tonight, a fund with a fund_shares.csv row tonight, and a
fund with a ``max_tracking_error`` (its ex-ante figure decides a rebalance). Every such fund
gets its row whatever its status (a blocked fund is measured too); a figure that cannot be
computed is null.

Realized (from the warehouse's history of the fund's own rows):
- ``nav_per_share`` = NAV / shares_outstanding;
- ``fund_return`` = NAV per share over the previous row's (the fund's latest night before
  this one), ``index_return`` = the index level over the previous row's, when the previous
  row followed the same model; ``tracking_difference`` = fund_return - index_return;
- ``tracking_error_20d`` / ``_60d``: the sample standard deviation (ddof 1) of the fund's
  last 20 / 60 daily tracking differences, this night's included, annualized by sqrt(252);
  null until all 20 (60) of those nights have a difference.

Ex ante: ``sqrt(d' S d) x sqrt(252)`` with ``d`` the fund's weight drift (current - target,
securities only, cash left out) and ``S`` the covariance of the securities' daily returns
(local currency, close over previous close) over the last 60 returns the warehouse's prices
give (``COVARIANCE_RETURNS``), shrunk toward its diagonal; null when fewer than 20 returns
are known for a security the fund holds or targets.

Shrinkage toward the diagonal, Ledoit-Wolf style: the target keeps every security's own
variance and sets the covariances to zero ("target D, diagonal, unequal variance" of
Schäfer & Strimmer, *A shrinkage approach to large-scale covariance matrix estimation*,
Stat. Appl. Genet. Mol. Biol. 4(1), 2005, Table 1; the intensity is Ledoit & Wolf's
optimal one, *Honey, I shrunk the sample covariance matrix*, J. Portfolio Mgmt 2004):

    S* = lambda diag(S) + (1 - lambda) S,
    lambda = sum_{i != j} Var(s_ij) / sum_{i != j} s_ij^2, clipped to [0, 1],
    Var(s_ij) = n / (n - 1)^3 sum_k (w_kij - mean_k w_kij)^2,  w_kij = x_ki x_kj (x centred).

lambda is worked out per fund over the securities it holds or targets, so a fund's figure
does not depend on which other funds share its night or shard. scikit-learn's LedoitWolf is
not used: it shrinks toward a scaled identity (every variance pulled to the average one),
not toward the diagonal the contract asks for. Everything is matrix algebra over a funds x
securities drift matrix ``D``: d' S d for every fund at once is rowsum((D @ S) * D).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from rebalance_core.schema import CASH

TRACKING_COLUMNS = [
    "as_of_date", "fund_id", "model_id", "nav_per_share", "index_level", "fund_return", "index_return",
    "tracking_difference", "tracking_error_20d", "tracking_error_60d", "ex_ante_tracking_error",
    "max_tracking_error",
]
# What the night needs of earlier nights' rows (the warehouse's fund_tracking).
HISTORY_COLUMNS = ["as_of_date", "fund_id", "model_id", "nav_per_share", "index_level", "tracking_difference"]
PRICE_HISTORY_COLUMNS = ["as_of_date", "security_id", "close_price"]
TRADING_DAYS = 252
REALIZED_WINDOWS = (20, 60)
COVARIANCE_RETURNS = 60        # daily returns the covariance is estimated from
MIN_COVARIANCE_RETURNS = 20    # fewer known returns of a security: no ex-ante figure


def tracking_funds(funds: pd.DataFrame, index_levels: pd.DataFrame | None,
                   fund_shares: pd.DataFrame | None) -> pd.DataFrame:
    """fund_id, model_id, max_tracking_error of the funds that get a tracking row tonight."""
    funds = funds.drop_duplicates("fund_id")
    model = (funds["model_id"] if "model_id" in funds else pd.Series(None, index=funds.index)).astype("object")
    model = model.where(model.notna() & (model.astype(str).str.strip() != ""), None)
    limit = pd.to_numeric(funds["max_tracking_error"], errors="coerce") if "max_tracking_error" in funds else \
        pd.Series(np.nan, index=funds.index)
    with_level = model.isin(set(index_levels["model_id"])) if index_levels is not None and len(index_levels) else \
        pd.Series(False, index=funds.index)
    with_shares = funds["fund_id"].isin(set(fund_shares["fund_id"])) if fund_shares is not None and len(
        fund_shares) else pd.Series(False, index=funds.index)
    keep = with_level | with_shares | limit.notna()
    return pd.DataFrame({"fund_id": funds.loc[keep, "fund_id"].to_numpy(), "model_id": model[keep].to_numpy(),
                         "max_tracking_error": limit[keep].to_numpy(dtype="float64")})


def compute_tracking(as_of: dt.date, funds: pd.DataFrame, summary: pd.DataFrame, drift: pd.DataFrame,
                     index_levels: pd.DataFrame | None = None, fund_shares: pd.DataFrame | None = None,
                     history: pd.DataFrame | None = None, price_history: pd.DataFrame | None = None,
                     prices: pd.DataFrame | None = None, nav_per_share: pd.Series | None = None) -> pd.DataFrame:
    """One ``fund_tracking`` row (TRACKING_COLUMNS) per fund ``tracking_funds`` selects.

    ``history``: earlier rows of these funds (HISTORY_COLUMNS); ``price_history``: earlier
    closes (PRICE_HISTORY_COLUMNS), to which tonight's ``prices`` are added.
    ``nav_per_share`` (per fund): the figure at the close, before the day's creations and
    redemptions settled (fund_shares.csv counts the shares of that close), where known."""
    rows = tracking_funds(funds, index_levels, fund_shares)
    if rows.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in TRACKING_COLUMNS})
    fund = rows["fund_id"]
    nav = fund.map(summary.drop_duplicates("fund_id").set_index("fund_id")["nav"]).astype("float64")
    shares = fund.map(_valid_once(fund_shares, "fund_id", "shares_outstanding"))
    rows["nav_per_share"] = (nav / shares).to_numpy(dtype="float64")
    if nav_per_share is not None and len(nav_per_share):
        known = fund.map(nav_per_share).astype("float64").to_numpy()
        rows["nav_per_share"] = np.where(np.isnan(known), rows["nav_per_share"].to_numpy(), known)
    rows["index_level"] = rows["model_id"].map(_valid_once(index_levels, "model_id", "level")).astype("float64")

    previous = _previous_rows(history, as_of)
    prev = previous.reindex(fund.to_numpy())
    rows["fund_return"] = rows["nav_per_share"].to_numpy() / prev["nav_per_share"].to_numpy(dtype="float64") - 1
    same_index = (prev["model_id"].to_numpy(dtype=object) == rows["model_id"].to_numpy(dtype=object))
    rows["index_return"] = np.where(same_index, rows["index_level"].to_numpy()
                                    / prev["index_level"].to_numpy(dtype="float64") - 1, np.nan)
    rows["tracking_difference"] = rows["fund_return"] - rows["index_return"]
    errors = realized_tracking_errors(rows[["fund_id", "tracking_difference"]].assign(as_of_date=pd.Timestamp(as_of)),
                                      previous_differences(history, as_of))
    for window in REALIZED_WINDOWS:
        rows[f"tracking_error_{window}d"] = fund.map(errors[window]).astype("float64").to_numpy()
    rows["ex_ante_tracking_error"] = fund.map(ex_ante_tracking_error(
        drift[drift["fund_id"].isin(fund)], _returns(as_of, price_history, prices))).astype("float64").to_numpy()
    rows["as_of_date"] = as_of
    return rows[TRACKING_COLUMNS].sort_values("fund_id", ignore_index=True)


def realized_tracking_errors(tonight: pd.DataFrame, earlier: pd.DataFrame) -> dict[int, pd.Series]:
    """Per window N, per fund: sd (ddof 1) of its last N daily differences x sqrt(252); NaN
    unless all N of them are known. ``tonight`` and ``earlier``: fund_id, as_of_date,
    tracking_difference (``earlier`` may hold several rows per fund)."""
    series = pd.concat([earlier[["fund_id", "as_of_date", "tracking_difference"]],
                        tonight[["fund_id", "as_of_date", "tracking_difference"]]], ignore_index=True)
    series["tracking_difference"] = pd.to_numeric(series["tracking_difference"], errors="coerce").astype("float64")
    series["as_of_date"] = pd.to_datetime(series["as_of_date"])
    series = series.sort_values(["fund_id", "as_of_date"], kind="stable")
    out = {}
    for window in REALIZED_WINDOWS:
        last = series.groupby("fund_id", sort=False).tail(window)
        by = last.groupby("fund_id", sort=False)["tracking_difference"]
        sd = by.std(ddof=1) * np.sqrt(TRADING_DAYS)
        out[window] = sd.where(by.count() == window)
    return out


def ex_ante_tracking_error(drift: pd.DataFrame, returns: pd.DataFrame) -> pd.Series:
    """Annualized ex-ante tracking error per fund (index fund_id) of ``drift`` rows, from
    ``returns`` (dates x securities, NaN where unknown), with the covariance shrunk toward
    its diagonal per fund (see the module docstring). NaN where it cannot be estimated."""
    rows = drift[drift["security_id"] != CASH]
    fund_ids = pd.Index(drift["fund_id"].unique())
    if rows.empty or returns.empty or len(returns) < 2:
        return pd.Series(np.nan, index=fund_ids)
    returns = returns.iloc[-COVARIANCE_RETURNS:]
    known = returns.notna().sum(axis=0)
    usable = known.index[known >= MIN_COVARIANCE_RETURNS]
    f_codes, f_values = pd.factorize(rows["fund_id"], sort=False)
    securities = pd.Index(rows["security_id"].unique())
    s_codes = securities.get_indexer(rows["security_id"])
    drift_values = rows["drift"].to_numpy(dtype="float64")
    # A fund with a holding or target it cannot value, or without enough returns for one: no figure.
    missing = np.bincount(f_codes, weights=(~np.isfinite(drift_values) | ~rows["security_id"].isin(usable)
                                            ).to_numpy(dtype="float64"), minlength=len(f_values)) > 0
    covariance, variance_of = sample_covariance(returns.reindex(columns=securities).to_numpy(dtype="float64"))
    members = np.zeros((len(f_values), len(securities)))
    members[f_codes, s_codes] = 1.0
    weights = np.zeros((len(f_values), len(securities)))
    weights[f_codes, s_codes] = np.nan_to_num(drift_values)
    intensity = shrinkage_intensity(members, covariance, variance_of)
    full = ((weights @ covariance) * weights).sum(axis=1)
    diagonal = (weights ** 2) @ np.diag(covariance)
    variance = (1 - intensity) * full + intensity * diagonal
    te = np.sqrt(np.clip(variance, 0.0, None) * TRADING_DAYS)
    te[missing] = np.nan
    return pd.Series(te, index=pd.Index(f_values)).reindex(fund_ids)


def sample_covariance(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, V): the sample covariance (ddof 1) of ``returns`` (n dates x p securities; an
    unknown return counts as the security's mean) and V[i, j], the estimated variance of
    S[i, j] (Schäfer & Strimmer 2005, eq. 8: n / (n - 1)^3 sum_k (w_kij - mean w_ij)^2)."""
    n = returns.shape[0]
    known = np.isfinite(returns)
    counts = known.sum(axis=0)
    mean = np.divide(np.where(known, returns, 0.0).sum(axis=0), counts, out=np.zeros(returns.shape[1]),
                     where=counts > 0)
    x = np.where(known, returns - mean, 0.0)
    mean_w = x.T @ x / n
    covariance = mean_w * n / (n - 1)
    squares = x ** 2
    # sum_k (w_kij - mean w_ij)^2 = sum_k x_ki^2 x_kj^2 - n mean_w_ij^2
    variance_of = n / (n - 1) ** 3 * np.clip(squares.T @ squares - n * mean_w ** 2, 0.0, None)
    return covariance, variance_of


def shrinkage_intensity(members: np.ndarray, covariance: np.ndarray, variance_of: np.ndarray) -> np.ndarray:
    """lambda per fund (row of ``members``, 1 where it holds or targets the security): the
    sum over its off-diagonal pairs of Var(s_ij) over the sum of s_ij^2, in [0, 1] (1 when
    it has no pair: one security, nothing to shrink)."""
    def off_diagonal_sum(matrix: np.ndarray) -> np.ndarray:
        return ((members @ matrix) * members).sum(axis=1) - members @ np.diag(matrix)

    numerator = off_diagonal_sum(variance_of)
    denominator = off_diagonal_sum(covariance ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        intensity = np.where(denominator > 0, numerator / denominator, 1.0)
    return np.clip(intensity, 0.0, 1.0)


def _returns(as_of: dt.date, price_history: pd.DataFrame | None, prices: pd.DataFrame | None) -> pd.DataFrame:
    """Daily returns, dates x securities, from the earlier closes and tonight's."""
    parts = []
    if price_history is not None and len(price_history):
        parts.append(price_history[PRICE_HISTORY_COLUMNS])
    if prices is not None and len(prices):
        parts.append(prices[["security_id", "close_price"]].assign(as_of_date=pd.Timestamp(as_of)))
    if not parts:
        return pd.DataFrame()
    closes = pd.concat(parts, ignore_index=True)
    closes["as_of_date"] = pd.to_datetime(closes["as_of_date"])
    closes["close_price"] = pd.to_numeric(closes["close_price"], errors="coerce").astype("float64")
    closes = closes[closes["close_price"] > 0].drop_duplicates(["as_of_date", "security_id"], keep="last")
    wide = closes.pivot(index="as_of_date", columns="security_id", values="close_price").sort_index()
    return (wide / wide.shift(1) - 1).iloc[1:]


def _valid_once(frame: pd.DataFrame | None, key: str, value: str) -> pd.Series:
    """``value`` by ``key`` where it is a positive number and the key is listed once (the
    rows validation faults are left out: their funds are blocked, their figures unknown)."""
    if frame is None or frame.empty:
        return pd.Series(dtype="float64")
    numbers = pd.to_numeric(frame[value], errors="coerce").astype("float64")
    once = ~frame[key].duplicated(keep=False)
    good = frame[once & (numbers > 0)]
    return pd.Series(numbers[good.index].to_numpy(), index=good[key].to_numpy())


def _previous_rows(history: pd.DataFrame | None, as_of: dt.date) -> pd.DataFrame:
    """Each fund's latest row before ``as_of`` (index fund_id)."""
    if history is None or history.empty:
        return pd.DataFrame(columns=["model_id", "nav_per_share", "index_level"], dtype="object")
    earlier = history[pd.to_datetime(history["as_of_date"]) < pd.Timestamp(as_of)]
    latest = earlier.sort_values("as_of_date", kind="stable").drop_duplicates("fund_id", keep="last")
    latest = latest.set_index("fund_id")[["model_id", "nav_per_share", "index_level"]]
    return latest.assign(nav_per_share=pd.to_numeric(latest["nav_per_share"], errors="coerce").astype("float64"),
                         index_level=pd.to_numeric(latest["index_level"], errors="coerce").astype("float64"))


def previous_differences(history: pd.DataFrame | None, as_of: dt.date) -> pd.DataFrame:
    if history is None or history.empty:
        return pd.DataFrame({"fund_id": pd.Series(dtype="object"), "as_of_date": pd.Series(dtype="datetime64[ns]"),
                             "tracking_difference": pd.Series(dtype="float64")})
    earlier = history[pd.to_datetime(history["as_of_date"]) < pd.Timestamp(as_of)]
    return earlier.assign(as_of_date=pd.to_datetime(earlier["as_of_date"]))[
        ["fund_id", "as_of_date", "tracking_difference"]]
