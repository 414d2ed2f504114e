"""Straight-through approval: which of a night's proposals a fund's rule approves on publish.

funds.csv's optional ``auto_approve_max_turnover`` (a fraction of NAV, like ``turnover``) and
``auto_approve_max_cost_bps`` (estimated cost in basis points of NAV) let routine rebalances
through without a person. ``auto_approvable(proposals, trades, funds)`` decides, for all funds
at once, which proposals qualify; the nightly publish then approves them inside the night's
transaction (status ``approved``, reviewed_by ``rule:auto``, an audit row with channel
``rule``). A proposal qualifies when all of these hold:

- its fund sets at least one of the two limits (a fund with neither, or with values that are
  not numbers, approves nothing by rule: every proposal waits for a person);
- it is within every limit that is set: ``turnover <= auto_approve_max_turnover`` and
  ``est_cost / nav * 1e4 <= auto_approve_max_cost_bps``;
- no wash sale (``wash_sale_trades == 0``) and no realized short-term gain
  (``est_realized_gain_short`` empty or <= 0): tax consequences are a person's call;
- no restriction finding (``restriction_note`` empty) and no compliance finding
  (``compliance_note`` empty); either column may be absent (the feature is off);
- its gross traded notional (base currency, the sum of its trades' notionals) is not above
  the fund's ``second_approval_notional`` when the fund sets one: a trade that size needs two
  people, and no rule may stand in for them. Money compared exactly (Decimal, as stored), by
  ``rebalance_core.lifecycle.needs_second_approval``, the same function a person's approval
  goes through; the publish asks the lifecycle again before it approves.

Pure and vectorized: no loop over funds, nothing read or written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rebalance_core import lifecycle

AUTO_APPROVER = "rule:auto"          # proposal.reviewed_by of a proposal approved by rule
RULE_CHANNEL = "rule"                # proposal_review.channel of such an approval
LIMIT_COLUMNS = ("auto_approve_max_turnover", "auto_approve_max_cost_bps")
SECOND_APPROVAL_COLUMN = "second_approval_notional"
FINDING_COLUMNS = ("restriction_note", "compliance_note")
# Rounding noise must not turn "exactly at the limit" into "above it".
SLACK = 1e-9


def auto_approvable(proposals: pd.DataFrame, trades: pd.DataFrame, funds: pd.DataFrame) -> pd.Series:
    """A boolean per proposal (aligned to ``proposals``' index): approved by its fund's rule."""
    if proposals.empty:
        return pd.Series(False, index=proposals.index, dtype=bool)
    by_fund = funds.drop_duplicates("fund_id").set_index("fund_id")
    fund = proposals["fund_id"]

    def fund_value(column: str) -> pd.Series:
        if column not in by_fund:
            return pd.Series(np.nan, index=proposals.index, dtype="float64")
        values = pd.to_numeric(by_fund[column], errors="coerce").astype("float64")
        return fund.map(values).astype("float64")

    max_turnover = fund_value("auto_approve_max_turnover")
    max_cost_bps = fund_value("auto_approve_max_cost_bps")
    nav = pd.to_numeric(proposals["nav"], errors="coerce").astype("float64")
    turnover = pd.to_numeric(proposals["turnover"], errors="coerce").astype("float64")
    cost_bps = pd.to_numeric(proposals["est_cost"], errors="coerce").astype("float64") / nav.where(nav > 0) * 1e4

    has_rule = max_turnover.notna() | max_cost_bps.notna()
    within_turnover = max_turnover.isna() | (turnover <= max_turnover + SLACK)
    within_cost = max_cost_bps.isna() | (cost_bps <= max_cost_bps + SLACK)

    wash_sales = pd.to_numeric(proposals.get("wash_sale_trades", 0), errors="coerce")
    no_wash_sale = pd.Series(wash_sales, index=proposals.index).fillna(0) == 0
    short_gain = (pd.to_numeric(proposals["est_realized_gain_short"], errors="coerce")
                  if "est_realized_gain_short" in proposals else pd.Series(np.nan, index=proposals.index))
    no_short_gain = short_gain.isna() | (short_gain <= 0)
    no_finding = pd.Series(True, index=proposals.index)
    for column in FINDING_COLUMNS:
        if column in proposals:
            note = proposals[column]
            no_finding &= note.isna() | (note.astype("object").astype(str).str.strip() == "")

    qualifies = (has_rule & within_turnover & within_cost & no_wash_sale & no_short_gain & no_finding
                 & nav.gt(0) & turnover.notna()).fillna(False).astype(bool)
    # Four eyes last, in exact money, only for the proposals that qualify otherwise.
    above = above_second_approval(proposals[qualifies], trades, by_fund)
    qualifies.loc[above.index[above.to_numpy()]] = False
    return qualifies


def above_second_approval(proposals: pd.DataFrame, trades: pd.DataFrame, by_fund: pd.DataFrame) -> pd.Series:
    """A boolean per proposal: its gross notional is above its fund's ``second_approval_notional``
    (four eyes), decided by ``lifecycle.needs_second_approval`` on money as the warehouse
    stores it (Decimal at 6 decimals), the very comparison a person's approval gets. Only
    the proposals of funds that set a threshold are summed."""
    above = pd.Series(False, index=proposals.index, dtype=bool)
    if SECOND_APPROVAL_COLUMN not in by_fund:
        return above
    threshold = proposals["fund_id"].map(by_fund[SECOND_APPROVAL_COLUMN].map(lifecycle.money))
    judged = threshold.notna()
    if not judged.any():
        return above
    ids = proposals.loc[judged, "proposal_id"]
    mine = trades.loc[trades["proposal_id"].isin(ids), ["proposal_id", "notional"]] if len(trades) else trades
    gross = (mine.groupby("proposal_id")["notional"].agg(lifecycle.gross_notional) if len(mine)
             else pd.Series(dtype=object))
    verdict = [lifecycle.needs_second_approval(gross.get(pid, 0), limit)
               for pid, limit in zip(ids, threshold[judged], strict=True)]
    above.loc[judged] = verdict
    return above


def auto_approval_notes(proposals: pd.DataFrame, funds: pd.DataFrame) -> pd.Series:
    """The review note of a rule approval: which limits the proposal was within, with the figures
    (``turnover 1.20% <= 2.00%; cost 3.1 bp <= 10 bp``)."""
    if proposals.empty:
        return pd.Series(dtype="object", index=proposals.index)
    by_fund = funds.drop_duplicates("fund_id").set_index("fund_id")

    def fund_value(column: str) -> pd.Series:
        if column not in by_fund:
            return pd.Series(np.nan, index=proposals.index, dtype="float64")
        return proposals["fund_id"].map(pd.to_numeric(by_fund[column], errors="coerce")).astype("float64")

    max_turnover, max_cost = fund_value("auto_approve_max_turnover"), fund_value("auto_approve_max_cost_bps")
    nav = pd.to_numeric(proposals["nav"], errors="coerce").astype("float64")
    turnover = pd.to_numeric(proposals["turnover"], errors="coerce").astype("float64")
    cost_bps = pd.to_numeric(proposals["est_cost"], errors="coerce").astype("float64") / nav.where(nav > 0) * 1e4
    turnover_text = ("turnover " + (turnover * 100).map("{:.2f}%".format) + " <= "
                     + (max_turnover * 100).map("{:.2f}%".format)).where(max_turnover.notna(), "")
    cost_text = ("cost " + cost_bps.map("{:.1f} bp".format) + " <= "
                 + max_cost.map("{:g} bp".format)).where(max_cost.notna(), "")
    within = turnover_text.str.cat(cost_text, sep="; ").str.strip("; ")
    return "approved by rule (funds.csv auto-approval limits): " + within
