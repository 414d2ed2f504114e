"""Funds: the review view's funds table of a night (filtered, sorted and paged in SQL, with
the counts per state) and one fund's page (its night, holdings, classes, baskets, proposals,
tracking).

Sort keys come from a fixed whitelist (the only identifiers put into SQL); every value is a
bound parameter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rebalance_core.schema import PROPOSAL_STATUSES
from rebalance_pipeline.read_model._sql import frame, row, table_exists
from rebalance_pipeline.warehouse import query_sql, read_frame

FUND_STATUSES = ("proposed", "in_band", "blocked")

# What the user may sort by: columns of sql/queries/fund_page.sql (never user text).
SORT_KEYS = ("fund_id", "nav", "max_abs_drift", "breach_count", "status", "proposal_status", "turnover", "est_cost")


@dataclass(frozen=True)
class FundFilter:
    """What the funds table shows: one date, optional status/proposal status/fund text."""

    as_of: dt.date
    status: str | None = None
    proposal_status: str | None = None
    search: str | None = None
    model: str | None = None      # funds following this model (fund_summary.model_id)
    sort: str = "max_abs_drift"
    descending: bool = True
    limit: int = 200
    offset: int = 0

    def __post_init__(self):
        if self.sort not in SORT_KEYS:
            raise ValueError(f"cannot sort by {self.sort!r}; choose one of {', '.join(SORT_KEYS)}")
        if self.status is not None and self.status not in FUND_STATUSES:
            raise ValueError(f"unknown fund status {self.status!r}")
        if self.proposal_status is not None and self.proposal_status not in PROPOSAL_STATUSES:
            raise ValueError(f"unknown proposal status {self.proposal_status!r}")

    @property
    def params(self) -> dict:
        """fund_page.sql's parameters."""
        return {"d": self.as_of, "st": self.status, "pst": self.proposal_status,
                "q": f"%{_escape_like(self.search)}%" if self.search else None, "m": self.model}

    @property
    def order(self) -> str:
        """ORDER BY of the page: the whitelisted sort column, then the fund id."""
        return f"{self.sort} {'DESC' if self.descending else 'ASC'} NULLS LAST, fund_id"


@dataclass
class FundPage:
    rows: pd.DataFrame
    total: int
    counts: dict[str, int] = field(default_factory=dict)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_funds(engine: Engine, flt: FundFilter) -> FundPage:
    """One page of the funds table for a date, sorted and filtered in SQL, plus status counts."""
    from rebalance_pipeline.fund_states import FUND_STATES, fund_states
    from rebalance_pipeline.read_model.nights import pending_count, state_groups

    page = query_sql("fund_page")
    with engine.connect() as conn:
        rows = read_frame(conn, f"SELECT * FROM ({page}) f ORDER BY {flt.order} LIMIT :n OFFSET :o",
                          {**flt.params, "n": flt.limit, "o": flt.offset})
        if flt.search or flt.proposal_status or flt.model:
            total = conn.execute(sa.text(f"SELECT count(*) FROM ({page}) f"), flt.params).scalar_one()
        else:
            total = None
    # Counted by state (rebalance_pipeline.fund_states), as the CLI and the HTML report count.
    groups = state_groups(engine, flt.as_of)
    by_state = (groups.assign(state=fund_states(groups)).groupby("state")["funds"].sum() if len(groups)
                else pd.Series(dtype="int64"))
    states = {s: int(by_state.get(s, 0)) for s in FUND_STATES}
    counts = {s: n for s, n in states.items() if n or s != "breached"}
    counts["pending_review"] = pending_count(engine, flt.as_of)
    if total is None:   # by date and fund status only: the groups counted it already
        total = int(groups.loc[groups["status"] == flt.status, "funds"].sum() if flt.status else groups["funds"].sum())
    rows = rows.assign(state=fund_states(rows)) if len(rows) else rows.assign(state=None)
    return FundPage(rows=rows, total=int(total), counts={k: int(v) for k, v in counts.items()})


def fund_night(engine: Engine, as_of: dt.date, fund_id: str) -> dict | None:
    """The fund's fund_summary row of the night."""
    with engine.connect() as conn:
        return row(conn, "fund_night", {"d": as_of, "f": fund_id})


def fund_drift(engine: Engine, as_of: dt.date, fund_id: str) -> pd.DataFrame:
    """The fund's holdings with current and target weight and band, largest drift first."""
    with engine.connect() as conn:
        return frame(conn, "fund_holdings_drift", {"d": as_of, "f": fund_id})


def fund_class_drift(engine: Engine, as_of: dt.date, fund_id: str) -> pd.DataFrame:
    """The fund's drift per asset class (rebalance.fund_class_drift), largest drift first."""
    with engine.connect() as conn:
        return frame(conn, "fund_class_drift", {"d": as_of, "f": fund_id})


def fund_baskets(engine: Engine, as_of: dt.date, fund_id: str) -> pd.DataFrame:
    """The fund's creation and redemption baskets of the night (an ETF's PCF); none for others."""
    with engine.connect() as conn:
        if not table_exists(conn, "rebalance.basket"):
            return pd.DataFrame(columns=["kind", "security_id", "quantity", "est_value"])
        return frame(conn, "fund_baskets", {"d": as_of, "f": fund_id})


def fund_proposals(engine: Engine, fund_id: str, limit: int = 20) -> pd.DataFrame:
    """The fund's proposals, newest first (history on the fund page)."""
    with engine.connect() as conn:
        return frame(conn, "fund_proposals", {"f": fund_id, "n": limit})


def fund_tracking(engine: Engine, fund_id: str, as_of: dt.date, nights: int = 60) -> pd.DataFrame:
    """The fund's fund_tracking rows of its last ``nights`` nights up to ``as_of``, oldest first."""
    with engine.connect() as conn:
        if not table_exists(conn, "rebalance.fund_tracking"):
            return pd.DataFrame(columns=["as_of_date", "tracking_difference"])
        return frame(conn, "fund_tracking", {"f": fund_id, "d": as_of, "n": nights})
