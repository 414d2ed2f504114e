"""Per-fund restrictions (restrictions.csv): what a fund may not buy, sell or hold.

Rules, per (fund, security):
- ``no_buy``: the fund may hold and sell it, never buy it;
- ``no_sell``: the fund may buy it, never sell it (a client's legacy holding, say);
- ``exclude``: the fund must not hold it (an ESG screen): a held one is sold, whatever the
  fund's policy (trigger ``restriction``), and its target goes to ``substitute_id`` when
  given, else to the fund's other security targets in proportion (to cash when it has none).

``apply_exclusions`` rewrites the targets in force before drift is computed, so drift,
bands and proposals all see the targets the fund may actually follow. ``no_buy`` and
``no_sell`` are applied when trades are sized (``rebalance_core.proposals``): a holding
that may not move the way its target asks stays where it is and the others share the rest.
Everything is a join or a groupby over all funds at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rebalance_core.models import isin_ids
from rebalance_core.schema import CASH, RESTRICTION_RULES, RULE_EXCLUDE

RESTRICTION_COLUMNS = ["fund_id", "security_id", "rule", "substitute_id"]


def clean_restrictions(restrictions: pd.DataFrame | None) -> pd.DataFrame:
    """The rows that name a known rule (validation blocks a fund with any other), one per
    (fund, security, rule); ``substitute_id`` blank becomes None."""
    if restrictions is None or restrictions.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in RESTRICTION_COLUMNS})
    out = restrictions.reindex(columns=RESTRICTION_COLUMNS).copy()
    out["rule"] = out["rule"].astype("object").where(out["rule"].notna(), "").astype(str).str.strip().str.lower()
    substitute = out["substitute_id"].astype("object").where(out["substitute_id"].notna(), "").astype(str).str.strip()
    out["substitute_id"] = substitute.where(substitute != "", None)
    out = out[out["rule"].isin(RESTRICTION_RULES)]
    return out.drop_duplicates(["fund_id", "security_id", "rule"]).reset_index(drop=True)


def rule_pairs(restrictions: pd.DataFrame, rule: str) -> pd.MultiIndex:
    """(fund_id, security_id) pairs under ``rule``."""
    rows = restrictions.loc[restrictions["rule"] == rule, ["fund_id", "security_id"]]
    return pd.MultiIndex.from_frame(rows) if len(rows) else pd.MultiIndex.from_arrays([[], []],
                                                                                        names=["fund_id", "security_id"])


def apply_exclusions(targets: pd.DataFrame, restrictions: pd.DataFrame | None) -> pd.DataFrame:
    """Targets with every excluded security's weight moved: to its substitute when given
    (a substitute the fund also excludes does not count), else to the fund's other security
    targets in proportion to their weights, else to cash. Other columns of ``targets``
    (``model_id``) follow the fund."""
    if restrictions is None or restrictions.empty or targets.empty:
        return targets
    excluded = restrictions[restrictions["rule"] == RULE_EXCLUDE]
    if excluded.empty:
        return targets
    excluded_keys = rule_pairs(restrictions, RULE_EXCLUDE)
    # Only the funds with an exclusion are looked at (a few of a large book).
    candidate = isin_ids(targets["fund_id"], excluded["fund_id"]) & (targets["security_id"] != CASH).to_numpy()
    is_excluded = np.zeros(len(targets), dtype=bool)
    if candidate.any():
        is_excluded[candidate] = pd.MultiIndex.from_frame(
            targets.loc[candidate, ["fund_id", "security_id"]]).isin(excluded_keys)
    if not is_excluded.any():
        return targets
    extra = [c for c in targets.columns if c not in ("fund_id", "security_id", "target_weight")]
    fund_extra = targets.drop_duplicates("fund_id").set_index("fund_id")[extra] if extra else None

    gone = targets.loc[is_excluded, ["fund_id", "security_id", "target_weight"]].merge(
        excluded[["fund_id", "security_id", "substitute_id"]].drop_duplicates(["fund_id", "security_id"]),
        on=["fund_id", "security_id"], how="left")
    substitute_keys = pd.MultiIndex.from_arrays([gone["fund_id"], gone["substitute_id"].fillna("")])
    usable = gone["substitute_id"].notna() & ~substitute_keys.isin(excluded_keys)
    to_substitute = gone.loc[usable, ["fund_id", "substitute_id", "target_weight"]].rename(
        columns={"substitute_id": "security_id"})

    kept = targets.loc[~is_excluded, ["fund_id", "security_id", "target_weight"]]
    spread = gone.loc[~usable].groupby("fund_id")["target_weight"].sum()
    receivers = kept[(kept["security_id"] != CASH) & isin_ids(kept["fund_id"], spread.index)]
    receiver_total = receivers.groupby("fund_id")["target_weight"].sum()
    share = receivers["target_weight"].astype("float64") / receivers["fund_id"].map(receiver_total).astype("float64")
    spread_rows = receivers.assign(
        target_weight=(share * receivers["fund_id"].map(spread).astype("float64")).fillna(0.0))
    # A fund left with no other security target keeps the excluded weight in cash.
    to_cash = spread[~spread.index.isin(receiver_total.index[receiver_total > 0])]
    cash_rows = pd.DataFrame({"fund_id": to_cash.index, "security_id": CASH, "target_weight": to_cash.to_numpy()})

    out = pd.concat([kept, to_substitute, spread_rows[["fund_id", "security_id", "target_weight"]], cash_rows],
                    ignore_index=True)
    out = out.groupby(["fund_id", "security_id"], as_index=False, sort=False)["target_weight"].sum()
    if fund_extra is not None:
        out = out.join(fund_extra, on="fund_id")
    return out


def funds_holding_excluded(positions: pd.DataFrame, restrictions: pd.DataFrame | None) -> pd.Index:
    """Funds that hold (quantity > 0) a security they exclude."""
    if restrictions is None or restrictions.empty or positions.empty:
        return pd.Index([], name="fund_id")
    excluded = restrictions[restrictions["rule"] == RULE_EXCLUDE]
    held = positions[(positions["quantity"] > 0).to_numpy() & isin_ids(positions["fund_id"], excluded["fund_id"])]
    keys = pd.MultiIndex.from_frame(held[["fund_id", "security_id"]])
    return pd.Index(held.loc[keys.isin(rule_pairs(restrictions, RULE_EXCLUDE)), "fund_id"].unique(), name="fund_id")
