"""Warehouse reads behind the review view: the exception queue, funds at a glance, one fund,
one proposal. The CLI (``rebalance show``) and the HTML report read the same functions and
``sql/queries`` files rather than SQL of their own.

Sorting and filtering happen in SQL. Sort keys come from a fixed whitelist (the only
identifiers interpolated into SQL); every value is a bound parameter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rebalance_core.schema import AWAITING_PERSON, POLICIES
from rebalance_core.schema import PROPOSAL_STATUSES as PROPOSAL_STATUSES
from rebalance_pipeline.fund_states import fund_states, state_counts
from rebalance_pipeline.warehouse import query_sql, read_frame

FUND_STATUSES = ("proposed", "in_band", "blocked")
# "compliance": a fund whose holdings fail a compliance rule tonight (review_queue_compliance.sql).
QUEUE_STATUSES = (*AWAITING_PERSON, "blocked", "compliance")
FUND_EXCEPTIONS = ("blocked", "compliance")   # queue items that are funds, not proposals
QUEUE_PAGE_SIZE = 50

# Column the user may sort by -> SQL expression (never user text).
SORT_KEYS = {
    "fund_id": "s.fund_id",
    "nav": "s.nav",
    "max_abs_drift": "s.max_abs_drift",
    "breach_count": "s.breach_count",
    "status": "s.status",
    "proposal_status": "p.status",
    "turnover": "p.turnover",
    "est_cost": "p.est_cost",
}


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


@dataclass
class FundPage:
    rows: pd.DataFrame
    total: int
    counts: dict[str, int] = field(default_factory=dict)


def business_dates(engine: Engine, limit: int = 60) -> list[dt.date]:
    """The most recent business dates that have results, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT DISTINCT as_of_date FROM rebalance.fund_summary "
                                    "ORDER BY as_of_date DESC LIMIT :n"), {"n": limit}).scalars().all()
    return list(rows)


def list_funds(engine: Engine, flt: FundFilter) -> FundPage:
    """One page of the funds table for a date, sorted and filtered in SQL, plus status counts."""
    where = ("s.as_of_date = :d AND (CAST(:st AS text) IS NULL OR s.status = :st)"
             " AND (CAST(:pst AS text) IS NULL OR p.status = :pst)"
             " AND (CAST(:q AS text) IS NULL OR s.fund_id ILIKE :q OR s.name ILIKE :q)"
             " AND (CAST(:m AS text) IS NULL OR s.model_id = :m)")
    params = {"d": flt.as_of, "st": flt.status, "pst": flt.proposal_status,
              "q": f"%{_escape_like(flt.search)}%" if flt.search else None, "m": flt.model}
    direction = "DESC" if flt.descending else "ASC"
    order = f"{SORT_KEYS[flt.sort]} {direction} NULLS LAST, s.fund_id"
    frm = "FROM rebalance.fund_summary s LEFT JOIN rebalance.proposal p ON p.proposal_id = s.proposal_id"
    with engine.connect() as conn:
        rows = read_frame(conn,
                          "SELECT s.fund_id, s.name, s.policy, s.model_id, s.base_currency, s.nav, s.cash_weight, s.max_abs_drift,"
                          " s.breached, s.breach_count, s.trigger, s.status, s.blocked_reason, s.flow, s.proposal_id,"
                          " p.status AS proposal_status, p.turnover, p.est_cost, p.trade_count "
                          f"{frm} WHERE {where} ORDER BY {order} LIMIT :n OFFSET :o",
                          {**params, "n": flt.limit, "o": flt.offset})
        # Counted by state (rebalance_pipeline.fund_states), as the CLI and the HTML report count:
        # SQL groups the night's funds by what a state depends on; fund_states names each group.
        groups = read_frame(conn, "SELECT status, (coalesce(breached, false) OR breach_count > 0) AS breached,"
                                  " 0 AS breach_count, CASE WHEN trigger IS NULL THEN NULL ELSE 'set' END AS trigger,"
                                  " policy, count(*) AS funds FROM rebalance.fund_summary WHERE as_of_date = :d "
                                  "GROUP BY 1, 2, 4, 5", {"d": flt.as_of})
        pending = conn.execute(sa.text("SELECT count(*) FROM rebalance.proposal WHERE as_of_date = :d "
                                       "AND status = 'pending_review'"), {"d": flt.as_of}).scalar_one()
    by_state = (groups.assign(state=fund_states(groups)).groupby("state")["funds"].sum() if len(groups)
                else pd.Series(dtype="int64"))
    states = {s: int(by_state.get(s, 0)) for s in state_counts(groups.iloc[0:0])}
    counts = {s: n for s, n in states.items() if n or s != "breached"}
    counts["pending_review"] = pending
    if flt.search or flt.proposal_status or flt.model:
        with engine.connect() as conn:
            total = conn.execute(sa.text(f"SELECT count(*) {frm} WHERE {where}"), params).scalar_one()
    else:   # by date and fund status only: the groups counted it already
        total = int(groups.loc[groups["status"] == flt.status, "funds"].sum() if flt.status else groups["funds"].sum())
    rows = rows.assign(state=fund_states(rows)) if len(rows) else rows.assign(state=None)
    return FundPage(rows=rows, total=int(total), counts={k: int(v) for k, v in counts.items()})


def fund_summary(engine: Engine, as_of: dt.date, fund_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM rebalance.fund_summary WHERE as_of_date = :d AND fund_id = :f"),
                           {"d": as_of, "f": fund_id}).mappings().first()
    return dict(row) if row else None


def fund_drift(engine: Engine, as_of: dt.date, fund_id: str) -> pd.DataFrame:
    """The fund's holdings with current and target weight and band, largest drift first."""
    with engine.connect() as conn:
        return read_frame(conn,
                          "SELECT security_id, quantity, price, currency, market_value, current_weight,"
                          " target_weight, drift, band_lower, band_upper, breached "
                          "FROM rebalance.fund_drift WHERE as_of_date = :d AND fund_id = :f "
                          "ORDER BY abs(drift) DESC NULLS LAST, security_id", {"d": as_of, "f": fund_id})


def fund_class_drift(engine: Engine, as_of: dt.date, fund_id: str) -> pd.DataFrame:
    """The fund's drift per asset class (rebalance.fund_class_drift), largest drift first."""
    with engine.connect() as conn:
        return read_frame(conn, query_sql("fund_class_drift"), {"d": as_of, "f": fund_id})


def fund_baskets(engine: Engine, as_of: dt.date, fund_id: str) -> pd.DataFrame:
    """The fund's creation and redemption baskets of the night (an ETF's PCF); none for others."""
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT to_regclass('rebalance.basket')")).scalar() is None:
            return pd.DataFrame(columns=["kind", "security_id", "quantity", "est_value"])
        return read_frame(conn, query_sql("fund_baskets"), {"d": as_of, "f": fund_id})


def fund_proposals(engine: Engine, fund_id: str, limit: int = 20) -> pd.DataFrame:
    """The fund's proposals, newest first (history on the fund page)."""
    with engine.connect() as conn:
        return read_frame(conn,
                          "SELECT proposal_id, as_of_date, status, trigger, turnover, est_cost, trade_count,"
                          " reviewed_by, reviewed_at FROM rebalance.proposal WHERE fund_id = :f "
                          "ORDER BY as_of_date DESC, created_at DESC LIMIT :n", {"f": fund_id, "n": limit})


def fund_tracking(engine: Engine, fund_id: str, as_of: dt.date, nights: int = 60) -> pd.DataFrame:
    """The fund's fund_tracking rows of its last ``nights`` nights up to ``as_of``, oldest first."""
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT to_regclass('rebalance.fund_tracking')")).scalar() is None:
            return pd.DataFrame(columns=["as_of_date", "tracking_difference"])
        return read_frame(conn,
                          "SELECT * FROM (SELECT as_of_date, model_id, nav_per_share, index_level, fund_return,"
                          " index_return, tracking_difference, tracking_error_20d, tracking_error_60d,"
                          " ex_ante_tracking_error, max_tracking_error FROM rebalance.fund_tracking"
                          " WHERE fund_id = :f AND as_of_date <= :d ORDER BY as_of_date DESC LIMIT :n) t "
                          "ORDER BY as_of_date", {"f": fund_id, "d": as_of, "n": nights})


def compliance_results(engine: Engine, proposal_id: str) -> pd.DataFrame:
    """The compliance rules a proposal was judged on (rebalance.compliance_result)."""
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT to_regclass('rebalance.compliance_result')")).scalar() is None:
            return pd.DataFrame(columns=["rule"])
        return read_frame(conn,
                          "SELECT rule, before_value, after_value, limit_value, passed, action, detail "
                          "FROM rebalance.compliance_result WHERE proposal_id = :id ORDER BY rule",
                          {"id": proposal_id})


@dataclass
class ProposalDetail:
    proposal: dict
    trades: pd.DataFrame
    reviews: pd.DataFrame
    export: dict | None
    later: dict | None = None             # the fund's latest night after this one (later_night)
    rejected_before: dict | None = None   # the same trades rejected on an earlier night (prior_rejections)


def proposal_detail(engine: Engine, proposal_id: str) -> ProposalDetail | None:
    """A proposal, its trades (before/after weights, costs, gains, reasons) and its audit trail."""
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT p.*, s.name AS fund_name, s.base_currency, s.policy "
                                   "FROM rebalance.proposal p LEFT JOIN rebalance.fund_summary s "
                                   "ON s.as_of_date = p.as_of_date AND s.fund_id = p.fund_id "
                                   "WHERE p.proposal_id = :id"), {"id": proposal_id}).mappings().first()
        if row is None:
            return None
        # Each line with the band its holding was judged against that night (fund_drift).
        trades = read_frame(conn,
                            "SELECT t.security_id, t.side, t.quantity, t.price, t.currency, t.notional,"
                            " t.weight_before, t.weight_after, t.target_weight, d.band_lower, d.band_upper,"
                            " t.est_cost, t.est_realized_gain, t.est_realized_gain_short, t.est_realized_gain_long,"
                            " t.wash_sale, t.reason, t.harvest_of FROM rebalance.proposal_trade t "
                            "LEFT JOIN rebalance.fund_drift d ON d.as_of_date = :d AND d.fund_id = :f"
                            " AND d.security_id = t.security_id "
                            "WHERE t.proposal_id = :id ORDER BY t.side DESC, t.notional DESC, t.security_id",
                            {"id": proposal_id, "d": row["as_of_date"], "f": row["fund_id"]})
        reviews = read_frame(conn,
                             "SELECT decision, decided_by, decided_at, note, channel FROM rebalance.proposal_review "
                             "WHERE proposal_id = :id ORDER BY decided_at, review_id", {"id": proposal_id})
        export = None
        if conn.execute(sa.text("SELECT to_regclass('rebalance.order_export')")).scalar() is not None:
            found = conn.execute(sa.text("SELECT file_name, order_count, exported_at FROM rebalance.order_export "
                                         "WHERE proposal_id = :id"), {"id": proposal_id}).mappings().first()
            export = dict(found) if found else None
        later = later_night(conn, row["fund_id"], row["as_of_date"])
    rejected = prior_rejections(engine, [proposal_id])
    return ProposalDetail(proposal=dict(row), trades=trades, reviews=reviews, export=export, later=later,
                          rejected_before=rejected.iloc[0].to_dict() if len(rejected) else None)


def later_night(conn, fund_id: str, as_of: dt.date) -> dict | None:
    """The fund's latest night after ``as_of`` (its state now): date, status, blocked reason,
    proposal id and that proposal's status; None when no later night was published."""
    row = conn.execute(sa.text(query_sql("later_night")), {"f": fund_id, "d": as_of}).mappings().first()
    return dict(row) if row else None


def later_night_text(fund_id: str, later: dict | None) -> str | None:
    """What became of a fund after a proposal's night, in words (None: no later night)."""
    if not later:
        return None
    day = later["as_of_date"]
    if later["status"] == "blocked":
        return f"fund {fund_id} blocked on {day}: {later['blocked_reason']}"
    if later["proposal_id"]:
        return f"newer proposal {later['proposal_id']} of {day} ({later['proposal_status'] or 'unknown'})"
    return f"fund {fund_id} in band on {day} (no newer proposal)"


def prior_rejections(engine: Engine, proposal_ids: list[str]) -> pd.DataFrame:
    """Per proposal, the latest rejection of its fund and trigger it carries (stored with it by
    its night, ``proposal.rejected_before_*``: rebalance_core.lifecycle.rejection_hints), with
    ``same_trades`` (the rejected proposal had the very same trades). A proposal published
    without that memory (before V016) is matched at read time by the same rule: the latest
    rejected proposal of the fund and trigger of an earlier night. Columns: proposal_id,
    rejected_id, rejected_date, rejected_by, rejected_at, rejected_note, trigger, same_trades."""
    if not proposal_ids:
        return pd.DataFrame(columns=["proposal_id", "rejected_id", "rejected_date", "rejected_by", "rejected_at",
                                     "rejected_note", "trigger", "same_trades"])
    with engine.connect() as conn:
        return read_frame(conn, query_sql("prior_rejections"), {"ids": list(proposal_ids)})


def rejection_text(rejected: dict | None) -> str | None:
    """"<what> rejected on <date> by <who>: <note>" for a proposal whose fund and trigger had a
    proposal rejected before (the same trades, or others)."""
    if not rejected:
        return None
    from rebalance_pipeline.dates import SCHEDULE_TIMEZONE

    at = rejected.get("rejected_at")
    day = pd.Timestamp(at).tz_convert(SCHEDULE_TIMEZONE).date() if at is not None and not pd.isna(at) else "?"
    note = rejected.get("rejected_note")
    trigger = rejected.get("trigger")
    what = ("the same trades were" if rejected.get("same_trades")
            else f"a {trigger} proposal of this fund was" if trigger else "a proposal of this fund was")
    return (f"{what} rejected on {day} by {rejected.get('rejected_by')}"
            + (f": {note}" if note else " (no note)")
            + f" (proposal {rejected.get('rejected_id')} of {rejected.get('rejected_date')})")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def proposal_states(engine: Engine, proposal_ids: list[str]) -> pd.DataFrame:
    """Where the given proposals stand now, in the given order (unknown ids included, status NULL)."""
    if not proposal_ids:
        return pd.DataFrame(columns=["proposal_id", "fund_id", "as_of_date", "status", "reviewed_by", "reviewed_at",
                                     "first_approved_by", "first_approved_at", "base_currency", "gross_notional"])
    with engine.connect() as conn:
        return read_frame(conn,
                          "SELECT i.proposal_id, p.fund_id, p.as_of_date, p.status, p.reviewed_by, p.reviewed_at,"
                          " p.first_approved_by, p.first_approved_at, p.base_currency, p.gross_notional "
                          "FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS i (proposal_id, n) "
                          "LEFT JOIN rebalance.proposal p USING (proposal_id) ORDER BY i.n", {"ids": proposal_ids})


def last_review(engine: Engine, proposal_id: str) -> dict | None:
    """The proposal's latest audit row (decision, decided_by, decided_at), None if undecided."""
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT decision, decided_by, decided_at FROM rebalance.proposal_review "
                                   "WHERE proposal_id = :id ORDER BY decided_at DESC, review_id DESC LIMIT 1"),
                           {"id": proposal_id}).mappings().first()
    return dict(row) if row else None


# ------------------------------------------------------------------ the exception queue
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


QUEUE_ORDER = "max_abs_drift DESC NULLS LAST, fund_id, proposal_id"


def _items(select: str, top: bool = False) -> str:
    """``WITH items AS (<queue proposals> UNION ALL <blocked funds> UNION ALL <compliance
    exceptions>) <select>``. ``top``: each part only its first ``:top`` rows in queue order (a
    page needs no more: the proposals are then read straight from proposal_queue_idx instead
    of sorting every pending one)."""
    parts = [query_sql("review_queue_proposals"), query_sql("review_queue_blocked"),
             query_sql("review_queue_compliance")]
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
        counts = dict(conn.execute(sa.text(query_sql("review_queue_counts")),
                                   {"d": flt.as_of, "queue": flt.is_filtered}).mappings().one())
    if not flt.is_filtered:   # the totals are the whole queue: its counts need no second look
        by_status = totals.groupby("status")["items"].sum() if len(totals) else pd.Series(dtype="int64")
        counts.update({s: int(by_status.get(s, 0)) for s in QUEUE_STATUSES})
    return QueuePage(rows=rows, total=int(totals["items"].sum()) if len(totals) else 0, totals=totals,
                     counts={k: int(v) for k, v in counts.items()})


def queue_totals(conn, flt: QueueFilter) -> pd.DataFrame:
    """The filtered queue by kind, status and base currency: items and gross notional (never
    summed across currencies)."""
    return read_frame(conn,
                      "SELECT 'proposal' AS kind, status, base_currency, count(*) AS items, sum(gross_notional) AS gross "
                      f"FROM ({query_sql('review_queue_proposals')}) p GROUP BY status, base_currency "
                      "UNION ALL SELECT 'blocked', 'blocked', NULL, count(*), NULL "
                      f"FROM ({query_sql('review_queue_blocked')}) b HAVING count(*) > 0 "
                      "UNION ALL SELECT 'compliance', 'compliance', NULL, count(*), NULL "
                      f"FROM ({query_sql('review_queue_compliance')}) c HAVING count(*) > 0 "
                      "ORDER BY kind DESC, status, base_currency", flt.params)


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
