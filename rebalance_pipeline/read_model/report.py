"""What the HTML drift report (``rebalance_pipeline.reporting``) reads: the night through the
reporting views of V005 (``fund_drift_history``, ``proposal_history``, ``approval_latency``),
the per-holding bands, the trend, tracking and compliance findings, decisions and backlog."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy.engine import Connection, Engine

from rebalance_core.approval import RULE_CHANNEL
from rebalance_pipeline.dates import SCHEDULE_TIMEZONE
from rebalance_pipeline.read_model._sql import frame, table_exists

TOP_FUNDS = 20
# Decisions are dated where the operations team works (and the nightly is scheduled).
DECISION_TIMEZONE = SCHEDULE_TIMEZONE


@dataclass
class ReportData:
    as_of: dt.date
    funds: pd.DataFrame            # fund_drift_history rows of the date, with ``state`` (FUND_STATES)
    proposals: pd.DataFrame        # proposal_history rows of the date
    bands: pd.DataFrame            # per top fund, the holding furthest out of its band: security_id, drift, band
    trend: pd.DataFrame            # as_of_date, base_currency, turnover_value, est_cost, proposals
    failures: pd.DataFrame         # failed validation checks of the date
    history_days: int
    decisions: pd.DataFrame        # index "day" / "window": decided, approved, rejected, median_hours, p90_hours
    backlog: pd.Series             # pending, oldest: proposals of earlier dates undecided at the end of the date
    window_start: dt.date          # first business date of the trailing window (of the trend too)
    # the night's proposals whose fund and trigger had a proposal rejected before (proposals.prior_rejections)
    came_back: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    # fund_tracking rows of the date (ETF tracking) and the compliance results of its proposals
    # that found something (a rule failing before or after, a trimmed or blocked proposal)
    tracking: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    compliance: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    # funds whose holdings fail a compliance rule tonight (sql/queries/compliance_exceptions.sql)
    compliance_exceptions: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    # tax-loss harvests proposed in the window (sql/queries/harvested_losses.sql)
    harvests: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)


def load_report_data(engine: Engine, as_of: dt.date, history_days: int = 60) -> ReportData:
    from rebalance_pipeline.fund_states import fund_states
    from rebalance_pipeline.read_model.nights import compliance_exceptions, validation_failures
    from rebalance_pipeline.read_model.proposals import rejections

    if history_days < 1:
        raise ValueError("history_days must be at least 1")
    with engine.connect() as conn:
        funds = frame(conn, "report_funds", {"d": as_of})
        if funds.empty:
            raise LookupError(f"nothing published for {as_of}")
        proposals = frame(conn, "report_proposals", {"d": as_of})
        top_ids = [str(f) for f in funds["fund_id"].head(TOP_FUNDS)]
        bands = frame(conn, "report_worst_holdings", {"d": as_of, "ids": top_ids})
        trend = frame(conn, "report_trend", {"d": as_of, "n": history_days})
        window_start = min(pd.to_datetime(trend["as_of_date"]).dt.date, default=as_of)
        tracking, compliance = load_tracking_and_compliance(conn, as_of)
        harvests = frame(conn, "harvested_losses", {"start": window_start, "d": as_of})
        decisions = load_decisions(conn, as_of, window_start)
        backlog = load_backlog(conn, as_of)
        came_back = rejections(conn, proposals["proposal_id"].astype(str).tolist())
    return ReportData(as_of=as_of, funds=funds.assign(state=fund_states(funds)), proposals=proposals, bands=bands,
                      trend=trend, failures=validation_failures(engine, as_of), history_days=history_days,
                      decisions=decisions, backlog=backlog, window_start=window_start, came_back=came_back,
                      tracking=tracking, compliance=compliance, harvests=harvests,
                      compliance_exceptions=compliance_exceptions(engine, as_of))


def load_tracking_and_compliance(conn: Connection, as_of: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The date's fund_tracking rows, and its compliance results with a finding (a rule
    failing before or after, or a proposal trimmed or blocked); empty before V012."""
    if not table_exists(conn, "rebalance.fund_tracking"):
        return pd.DataFrame(), pd.DataFrame()
    return frame(conn, "report_tracking", {"d": as_of}), frame(conn, "report_compliance_findings", {"d": as_of})


def load_decisions(conn: Connection, as_of: dt.date, window_start: dt.date,
                   timezone: str = DECISION_TIMEZONE) -> pd.DataFrame:
    """Decisions on the proposals of the night of ``as_of`` (row ``night``, whenever they
    were taken, as far as recorded), decisions taken on ``as_of`` (row ``day``) and from
    ``window_start`` to ``as_of`` (row ``window``), whatever the date of the proposal
    decided: a decision's date is its ``decided_at`` in ``timezone``. Hours run from the
    proposal's ``created_at`` (its publication) to its first decision (``approval_latency``).
    Approvals by a fund's straight-through rule (channel ``rule``) are counted apart
    (``auto_approved``) and left out of the hours, which measure people's review."""
    decisions = frame(conn, "report_decisions", {"d": as_of, "start": window_start,
                                                 "end": as_of + dt.timedelta(days=1), "tz": timezone,
                                                 "rule": RULE_CHANNEL})
    return decisions.set_index("scope").reindex(["night", "day", "window"])


def load_backlog(conn: Connection, as_of: dt.date, timezone: str = DECISION_TIMEZONE) -> pd.Series:
    """Proposals of dates before ``as_of`` that were still waiting for a decision at the end
    of ``as_of`` (in ``timezone``): ``pending`` and the ``oldest`` of their dates.

    Undecided then means: decided later, or not at all and still pending, or superseded
    only by a night after ``as_of`` (publish supersedes a fund's pending proposals when its
    next night comes), so a report rebuilt later tells the same story.
    """
    return frame(conn, "report_backlog", {"d": as_of, "tz": timezone}).iloc[0]
