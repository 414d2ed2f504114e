"""The review view's exception queue: proposals waiting for a person, blocked funds and
funds whose holdings fail a compliance rule, largest drift first, filtered in SQL.

The three parts are files (``review_queue_proposals``, ``_blocked``, ``_compliance``); this
module only joins them (UNION ALL, a fixed ORDER BY, bound LIMIT/OFFSET): no value is ever
put into the SQL text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pandas as pd
from sqlalchemy.engine import Engine

from rebalance_core.schema import AWAITING_PERSON, POLICIES
from rebalance_pipeline.read_model._sql import row
from rebalance_pipeline.warehouse import query_sql, read_frame

# "compliance": a fund whose holdings fail a compliance rule tonight (review_queue_compliance.sql).
QUEUE_STATUSES = (*AWAITING_PERSON, "blocked", "compliance")
FUND_EXCEPTIONS = ("blocked", "compliance")   # queue items that are funds, not proposals
QUEUE_PAGE_SIZE = 50
QUEUE_ORDER = "max_abs_drift DESC NULLS LAST, fund_id, proposal_id"
PARTS = ("review_queue_proposals", "review_queue_blocked", "review_queue_compliance")


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows: blocked funds of ``as_of`` and proposals waiting for a person,
    narrowed by status, model, policy, base currency, gross notional (base currency) and
    turnover (a fraction of NAV); largest drift first."""

    as_of: dt.date | None
    status: str | None = None
    model: str | None = None
    policy: str | None = None
    currency: str | None = None
    gross_min: float | None = None
    gross_max: float | None = None
    turnover_min: float | None = None
    turnover_max: float | None = None

    def __post_init__(self):
        if self.status is not None and self.status not in QUEUE_STATUSES:
            raise ValueError(f"unknown queue status {self.status!r}; choose one of {', '.join(QUEUE_STATUSES)}")
        if self.policy is not None and self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; choose one of {', '.join(POLICIES)}")
        for low, high in (("gross_min", "gross_max"), ("turnover_min", "turnover_max")):
            for name in (low, high):
                value = getattr(self, name)
                if value is not None and not (value >= 0 and value < 1e18):
                    raise ValueError(f"{name} must be a number of at least 0")
            if None not in (getattr(self, low), getattr(self, high)) and getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} is above {high}")

    @property
    def params(self) -> dict:
        return {"d": self.as_of, "status": self.status, "model": self.model, "policy": self.policy,
                "currency": self.currency, "gross_min": self.gross_min, "gross_max": self.gross_max,
                "turnover_min": self.turnover_min, "turnover_max": self.turnover_max}

    @property
    def is_filtered(self) -> bool:
        return any(v is not None for k, v in self.params.items() if k != "d")


def _items(select: str, top: bool = False) -> str:
    """``WITH items AS (<queue proposals> UNION ALL <blocked funds> UNION ALL <compliance
    exceptions>) <select>``. ``top``: each part only its first ``:top`` rows in queue order (a
    page needs no more: the proposals are then read straight from proposal_queue_idx instead
    of sorting every pending one)."""
    parts = [query_sql(name) for name in PARTS]
    if top:
        parts = [f"({part} ORDER BY {QUEUE_ORDER} LIMIT :top)" for part in parts]
    return f"WITH items AS ({' UNION ALL '.join(parts)}) {select}"


@dataclass
class QueuePage:
    rows: pd.DataFrame
    total: int
    totals: pd.DataFrame    # kind, status, base_currency, items, gross: the whole filtered queue
    counts: dict[str, int]  # unfiltered headline (review_queue_counts.sql)


def queue_page(engine: Engine, flt: QueueFilter, offset: int = 0, limit: int = QUEUE_PAGE_SIZE) -> QueuePage:
    """One page of the queue (largest drift first) with the filtered totals and the headline."""
    with engine.connect() as conn:
        rows = read_frame(conn, _items(
            f"SELECT i.*, f.name FROM (SELECT * FROM items ORDER BY {QUEUE_ORDER} LIMIT :n OFFSET :o) i "
            "LEFT JOIN rebalance.fund_summary f ON f.as_of_date = i.as_of_date AND f.fund_id = i.fund_id "
            f"ORDER BY {', '.join('i.' + c for c in QUEUE_ORDER.split(', '))}", top=True),
            {**flt.params, "n": limit, "o": offset, "top": offset + limit})
        totals = queue_totals(conn, flt)
        counts = row(conn, "review_queue_counts", {"d": flt.as_of, "queue": flt.is_filtered}) or {}
    if not flt.is_filtered:   # the totals are the whole queue: its counts need no second look
        by_status = totals.groupby("status")["items"].sum() if len(totals) else pd.Series(dtype="int64")
        counts.update({s: int(by_status.get(s, 0)) for s in QUEUE_STATUSES})
    return QueuePage(rows=rows, total=int(totals["items"].sum()) if len(totals) else 0, totals=totals,
                     counts={k: int(v) for k, v in counts.items()})


def queue_totals(conn, flt: QueueFilter) -> pd.DataFrame:
    """The filtered queue by kind, status and base currency: items and gross notional (never
    summed across currencies)."""
    proposals, blocked, compliance = (query_sql(name) for name in PARTS)
    sql = query_sql("review_queue_totals").format(proposals=proposals, blocked=blocked, compliance=compliance)
    return read_frame(conn, sql, flt.params)


def queue_proposals(engine: Engine, flt: QueueFilter, limit: int) -> pd.DataFrame:
    """The proposals the filter selects, in queue order, at most ``limit``: proposal_id,
    status, base_currency, gross_notional (what a bulk decision by filter counts)."""
    with engine.connect() as conn:
        return read_frame(conn, f"SELECT proposal_id, status, base_currency, gross_notional FROM "
                                f"({query_sql('review_queue_proposals')}) p ORDER BY {QUEUE_ORDER} LIMIT :n",
                          {**flt.params, "n": limit})


def gross_by_currency(frame: pd.DataFrame) -> list[tuple[str, Decimal]]:
    """(currency, gross notional) of proposals, largest first: what a bulk decision moves."""
    if frame.empty:
        return []
    sums = frame.assign(base_currency=frame["base_currency"].fillna("?")).groupby("base_currency")[
        "gross_notional"].apply(lambda values: sum((Decimal(str(v)) for v in values if v is not None), Decimal(0)))
    return sorted(sums.items(), key=lambda item: item[1], reverse=True)
