"""Proposals: lists of them, one in detail (trades with their bands, audit trail, export,
what became of the fund since, an earlier rejection), and where a set of them stands now."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy.engine import Connection, Engine

from rebalance_pipeline.read_model._sql import frame, row, scalar, table_exists

REJECTION_COLUMNS = ["proposal_id", "rejected_id", "rejected_date", "rejected_by", "rejected_at", "rejected_note",
                     "trigger", "same_trades"]
STATE_COLUMNS = ["proposal_id", "fund_id", "as_of_date", "status", "reviewed_by", "reviewed_at",
                 "first_approved_by", "first_approved_at", "base_currency", "gross_notional"]


def proposals(engine: Engine, as_of: dt.date | None = None, status: str | None = None,
              limit: int = 100) -> pd.DataFrame:
    """Proposals of a night (default: all) in a status (default: any), newest night first."""
    with engine.connect() as conn:
        return frame(conn, "proposal_list", {"d": as_of, "st": status, "n": limit})


def proposal_count(engine: Engine, as_of: dt.date | None = None, status: str | None = None) -> int:
    with engine.connect() as conn:
        return int(scalar(conn, "proposal_count", {"d": as_of, "st": status}))


@dataclass
class ProposalDetail:
    proposal: dict
    trades: pd.DataFrame
    reviews: pd.DataFrame
    export: dict | None
    later: dict | None = None             # the fund's latest night after this one (later_night)
    rejected_before: dict | None = None   # the same trades rejected on an earlier night (prior_rejections)


def proposal_detail(engine: Engine, proposal_id: str) -> ProposalDetail | None:
    """A proposal, its trades (before/after weights, costs, gains, reasons, each with the
    band its holding was judged against that night) and its audit trail."""
    ids = {"id": proposal_id}
    with engine.connect() as conn:
        proposal = row(conn, "proposal_with_fund", ids)
        if proposal is None:
            return None
        trades = frame(conn, "proposal_trades", {**ids, "d": proposal["as_of_date"], "f": proposal["fund_id"]})
        reviews = frame(conn, "proposal_reviews", ids)
        export = row(conn, "proposal_export", ids) if table_exists(conn, "rebalance.order_export") else None
        later = later_night(conn, proposal["fund_id"], proposal["as_of_date"])
        rejected = rejections(conn, [proposal_id])
    return ProposalDetail(proposal=proposal, trades=trades, reviews=reviews, export=export, later=later,
                          rejected_before=rejected.iloc[0].to_dict() if len(rejected) else None)


def later_night(conn: Connection, fund_id: str, as_of: dt.date) -> dict | None:
    """The fund's latest night after ``as_of`` (its state now): date, status, blocked reason,
    proposal id and that proposal's status; None when no later night was published."""
    return row(conn, "later_night", {"f": fund_id, "d": as_of})


def prior_rejections(engine: Engine, proposal_ids: list[str]) -> pd.DataFrame:
    """Per proposal, the latest rejection of its fund and trigger it carries (stored with it by
    its night, ``proposal.rejected_before_*``: rebalance_core.lifecycle.rejection_hints), with
    ``same_trades`` (the rejected proposal had the very same trades). A proposal published
    without that memory (before V016) is matched at read time by the same rule: the latest
    rejected proposal of the fund and trigger of an earlier night. Columns: REJECTION_COLUMNS."""
    if not proposal_ids:
        return pd.DataFrame(columns=REJECTION_COLUMNS)
    with engine.connect() as conn:
        return rejections(conn, proposal_ids)


def rejections(conn: Connection, proposal_ids: list[str]) -> pd.DataFrame:
    """``prior_rejections`` on an open connection."""
    return frame(conn, "prior_rejections", {"ids": list(proposal_ids)})


def proposal_states(engine: Engine, proposal_ids: list[str]) -> pd.DataFrame:
    """Where the given proposals stand now, in the given order (unknown ids included, status NULL)."""
    if not proposal_ids:
        return pd.DataFrame(columns=STATE_COLUMNS)
    with engine.connect() as conn:
        return frame(conn, "proposal_states", {"ids": proposal_ids})


def last_review(engine: Engine, proposal_id: str) -> dict | None:
    """The proposal's latest audit row (decision, decided_by, decided_at), None if undecided."""
    with engine.connect() as conn:
        return row(conn, "proposal_last_review", {"id": proposal_id})


def compliance_results(engine: Engine, proposal_id: str) -> pd.DataFrame:
    """The compliance rules a proposal was judged on (rebalance.compliance_result)."""
    with engine.connect() as conn:
        if not table_exists(conn, "rebalance.compliance_result"):
            return pd.DataFrame(columns=["rule"])
        return frame(conn, "proposal_compliance", {"id": proposal_id})
