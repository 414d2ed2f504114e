"""A published night as a whole: which nights there are, the run that published one, its
funds by state, its counts, top trades, failed checks, compliance exceptions and expired
approvals (the CLI's morning report, the review view's headline, the HTML report)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy.engine import Engine

from rebalance_pipeline.read_model._sql import column, frame, row, scalar, table_exists


def latest_date(engine: Engine, on_or_before: dt.date | None = None) -> dt.date | None:
    """The latest published night (on or before a date, if given)."""
    with engine.connect() as conn:
        value = scalar(conn, "night_latest_date", {"d": on_or_before})
    return None if value is None or pd.isna(value) else value


def night_exists(engine: Engine, as_of: dt.date) -> bool:
    with engine.connect() as conn:
        return bool(scalar(conn, "night_exists", {"d": as_of}))


def business_dates(engine: Engine, limit: int = 60) -> list[dt.date]:
    """The most recent business dates that have results, newest first."""
    with engine.connect() as conn:
        return column(conn, "night_dates", {"n": limit})


def night_run(engine: Engine, as_of: dt.date) -> dict | None:
    """The run that published the night (the latest, after reruns)."""
    with engine.connect() as conn:
        return row(conn, "night_run", {"d": as_of})


def fund_calendars(engine: Engine) -> list[str]:
    """The funds' trading calendars (XNYS where a fund names none)."""
    with engine.connect() as conn:
        return column(conn, "night_fund_calendars")


def state_counts(engine: Engine, as_of: dt.date) -> pd.DataFrame:
    """Funds per state (``rebalance_pipeline.fund_states``: the HTML report's and the review
    view's definition) with their NAV per base currency: state, funds, nav ({currency: sum})."""
    from rebalance_pipeline.fund_states import FUND_STATES, fund_states

    groups = state_groups(engine, as_of)
    groups = groups.assign(state=fund_states(groups), nav=pd.to_numeric(groups["nav"], errors="coerce"))
    rows = []
    for state in FUND_STATES:
        mine = groups[groups["state"] == state]
        if mine.empty and state == "breached":
            continue  # rare: a row only when it happens (as in the HTML report)
        nav = mine.groupby(mine["base_currency"].fillna("?"))["nav"].sum(min_count=1)
        rows.append({"state": state, "funds": int(mine["funds"].sum()),
                     "nav": {c: v for c, v in nav.items() if not pd.isna(v)}})
    return pd.DataFrame(rows, columns=["state", "funds", "nav"])


def state_groups(engine: Engine, as_of: dt.date) -> pd.DataFrame:
    """The night's funds grouped by what a state depends on and by base currency, with
    ``funds`` and ``nav`` per group (``fund_states`` names each group's state)."""
    with engine.connect() as conn:
        return frame(conn, "night_fund_state_groups", {"d": as_of})


def pending_ids(engine: Engine, as_of: dt.date) -> set[str]:
    """The ids of the night's proposals pending review."""
    with engine.connect() as conn:
        return set(column(conn, "night_pending_ids", {"d": as_of}))


def pending_count(engine: Engine, as_of: dt.date) -> int:
    with engine.connect() as conn:
        return int(scalar(conn, "night_pending_count", {"d": as_of}))


def run_proposal_ids(engine: Engine, run_id: str) -> set[str]:
    """The ids of the proposals a run published."""
    with engine.connect() as conn:
        return set(column(conn, "run_proposal_ids", {"r": run_id}))


def approval_counts(engine: Engine, as_of: dt.date) -> dict[str, int]:
    """The night's proposals approved by their fund's rule (``rule:auto``, straight-through)
    and by people, counted apart."""
    from rebalance_core.approval import AUTO_APPROVER

    with engine.connect() as conn:
        counts = row(conn, "night_approval_counts", {"d": as_of, "rule": AUTO_APPROVER}) or {}
    return {"by_rule": int(counts.get("by_rule") or 0), "by_people": int(counts.get("by_people") or 0)}


def fund_count(engine: Engine, as_of: dt.date, status: str | None = None) -> int:
    with engine.connect() as conn:
        return int(scalar(conn, "night_fund_count", {"d": as_of, "st": status}))


def trade_count(engine: Engine, as_of: dt.date) -> int:
    """The trades of the night's proposals that are not superseded."""
    with engine.connect() as conn:
        return int(scalar(conn, "night_trade_count_live", {"d": as_of}))


def night_funds(engine: Engine, as_of: dt.date, status: str | None = None, limit: int | None = 50) -> pd.DataFrame:
    """The night's funds (in ``status``) with their proposal, largest drift first."""
    with engine.connect() as conn:
        return frame(conn, "night_funds", {"d": as_of, "st": status, "n": limit})


def top_trades(engine: Engine, as_of: dt.date, limit: int = 10) -> pd.DataFrame:
    with engine.connect() as conn:
        return frame(conn, "night_top_trades", {"d": as_of, "n": limit})


def validation_failures(engine: Engine, as_of: dt.date) -> pd.DataFrame:
    with engine.connect() as conn:
        return frame(conn, "night_failed_checks", {"d": as_of})


def expired_approvals(engine: Engine, as_of: dt.date) -> pd.DataFrame:
    """Funds whose approval expired unexecuted on the night (fund_state), with the reason."""
    with engine.connect() as conn:
        return frame(conn, "night_expired_approvals", {"d": as_of})


def compliance_exceptions(engine: Engine, as_of: dt.date) -> pd.DataFrame:
    """Funds whose holdings fail a compliance rule on ``as_of`` (fund_id, rule, value,
    limit_value, detail): judged every night, traded or not; empty before V016."""
    with engine.connect() as conn:
        if not table_exists(conn, "rebalance.compliance_result"):
            return pd.DataFrame(columns=["fund_id", "rule", "value", "limit_value", "detail"])
        return frame(conn, "compliance_exceptions", {"d": as_of})


def schema_created(engine: Engine) -> bool:
    """Whether the warehouse's schema was ever created (it has a pipeline_run table)."""
    with engine.connect() as conn:
        return table_exists(conn, "rebalance.pipeline_run")
