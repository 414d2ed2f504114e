"""Which funds a bad input row blocks, and why.

Validation (Great Expectations, in the adapters) reports each unexpected row as a *fault*:
the dataset and check it failed, the row's number in its file, a sentence saying what is
wrong, and the key it is about, a ``fund_id``, a ``security_id`` or a ``model_id``. A
fund-level fault blocks that fund; a security-level fault (a bad or duplicated price)
blocks every fund that holds or targets the security; a model-level fault (a model's
weights do not sum to 1) blocks every fund that follows the model. Everything else goes on.
"""

from __future__ import annotations

import pandas as pd

FAULT_COLUMNS = ["dataset", "check", "source_row", "fund_id", "security_id", "message", "model_id"]

# How many distinct reasons a fund's blocked_reason lists before it says "+N more".
MAX_REASONS = 5


def empty_faults() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in FAULT_COLUMNS})


def blocked_funds(faults: pd.DataFrame, positions: pd.DataFrame, targets: pd.DataFrame,
                  funds: pd.DataFrame | None = None) -> pd.DataFrame:
    """``fund_id, blocked_reason`` for every fund a fault touches (one row per fund).

    ``funds`` (with ``model_id``) says which funds follow a model a fault blames."""
    if faults.empty:
        return pd.DataFrame({"fund_id": pd.Series(dtype="object"), "blocked_reason": pd.Series(dtype="object")})
    faults = faults.copy()
    faults["reason"] = faults["dataset"] + faults["source_row"].map(
        lambda r: f" row {int(r)}" if pd.notna(r) else "") + ": " + faults["message"]

    if "model_id" not in faults:
        faults["model_id"] = None
    by_fund = faults.loc[faults["fund_id"].notna(), ["fund_id", "reason"]]
    by_model = faults.loc[faults["fund_id"].isna() & faults["model_id"].notna(), ["model_id", "reason"]]
    by_security = faults.loc[faults["fund_id"].isna() & faults["model_id"].isna() & faults["security_id"].notna(),
                             ["security_id", "reason"]]
    exposure = pd.concat([positions[["fund_id", "security_id"]], targets[["fund_id", "security_id"]]],
                         ignore_index=True).drop_duplicates()
    via_security = by_security.merge(exposure, on="security_id", how="inner")[["fund_id", "reason"]]

    via_model = pd.DataFrame(columns=["fund_id", "reason"])
    if len(by_model) and funds is not None and "model_id" in funds:
        followers = funds.loc[funds["model_id"].notna(), ["fund_id", "model_id"]].drop_duplicates()
        via_model = by_model.merge(followers, on="model_id", how="inner")[["fund_id", "reason"]]
    touched = pd.concat([f for f in (by_fund, via_security, via_model) if len(f)] or [by_fund],
                        ignore_index=True).drop_duplicates()
    touched = touched.sort_values(["fund_id", "reason"], kind="stable")
    # Only blocked funds reach this Python-level join, and they are few.
    reasons = touched.groupby("fund_id", sort=True)["reason"].agg(_join_reasons)
    return reasons.rename("blocked_reason").reset_index()


def _join_reasons(reasons: pd.Series) -> str:
    listed = list(reasons.iloc[:MAX_REASONS])
    more = len(reasons) - len(listed)
    return "; ".join(listed) + (f"; (+{more} more)" if more > 0 else "")
