"""Facts from the approved history that tonight's decision needs, read from the warehouse.

The reader decides nothing: it returns rows, and ``rebalance_core.night`` applies the rules
(wash sales, the fund state: funds awaiting the execution of approved orders). SQL is in ``sql/queries``.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy.engine import Connection

from rebalance_core import harvest, lifecycle, tax_lots
from rebalance_core.harvest import HARVEST_TRADE_COLUMNS
from rebalance_core.schema import WASH_SALE_DAYS
from rebalance_pipeline.warehouse import query_sql, read_frame


def recent_loss_sales(conn: Connection, as_of: dt.date) -> pd.DataFrame:
    """fund_id, security_id of approved loss sales in the wash-sale window before ``as_of``:
    the SQL reads the approved sells of the window, the core says which are loss sales
    (``tax_lots.recent_loss_sales``, the replay's rule too)."""
    frame = read_frame(conn, query_sql("recent_loss_sales"),
                       {"start": as_of - dt.timedelta(days=WASH_SALE_DAYS), "d": as_of})
    frame = frame.reindex(columns=["as_of_date", "fund_id", "security_id", "side", "est_realized_gain"])
    return tax_lots.recent_loss_sales(frame, as_of)


def recent_buys(conn: Connection, as_of: dt.date) -> pd.DataFrame:
    """fund_id, security_id of approved buys in the wash-sale window before ``as_of``."""
    frame = read_frame(conn, query_sql("recent_buys"), {"start": as_of - dt.timedelta(days=WASH_SALE_DAYS), "d": as_of})
    return frame.reindex(columns=["fund_id", "security_id"]).astype(object)


def open_harvests(conn: Connection, as_of: dt.date) -> pd.DataFrame:
    """Approved harvests not swapped back before ``as_of``: fund_id, security_id,
    substitute_id, harvested_on. The SQL reads the approved tax trades that name a harvested
    security; which pairs are open is the core's rule (``harvest.open_harvests``), the one the
    replay applies too."""
    frame = read_frame(conn, query_sql("open_harvests"), {"d": as_of}).reindex(columns=HARVEST_TRADE_COLUMNS)
    return harvest.open_harvests(frame)


def approved_orders(conn: Connection, as_of: dt.date, since: dt.date) -> pd.DataFrame:
    """Per fund, its latest approved proposal of a date in [``since``, ``as_of``) with its
    orders and the quantities held before them (rebalance_core.fund_state.APPROVED_COLUMNS)."""
    from rebalance_core.fund_state import APPROVED_COLUMNS

    frame = read_frame(conn, query_sql("approved_orders"), {"d": as_of, "since": since})
    frame = frame.reindex(columns=APPROVED_COLUMNS)
    for column in ("quantity", "quantity_before"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["proposal_date"] = pd.to_datetime(frame["proposal_date"])
    frame["approved_at"] = pd.to_datetime(frame["approved_at"], utc=True)
    for column in ("fund_id", "proposal_id", "security_id", "side"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def executions_of(conn: Connection, as_of: dt.date, proposal_ids) -> pd.DataFrame:
    """What nights before ``as_of`` and operators reported done of ``proposal_ids``
    (EXECUTION_COLUMNS without fund_id)."""
    from rebalance_core.fund_state import EXECUTION_COLUMNS

    frame = read_frame(conn, query_sql("executions_of"), {"d": as_of, "ids": sorted(set(proposal_ids))})
    frame = frame.reindex(columns=[c for c in EXECUTION_COLUMNS if c != "fund_id"])
    for column in ("quantity", "price"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def previous_state(conn: Connection, as_of: dt.date, fund_ids) -> pd.DataFrame:
    """Each fund's latest state before ``as_of`` (FUND_STATE_COLUMNS): the latest night's
    partition, and for the funds of ``fund_ids`` that night did not decide, their own latest."""
    from rebalance_core.fund_state import FUND_STATE_COLUMNS

    frame = read_frame(conn, query_sql("fund_state_before"), {"d": as_of})
    missing = sorted(set(fund_ids) - set(frame["fund_id"])) if len(frame) else sorted(set(fund_ids))
    if missing:
        older = read_frame(conn, query_sql("fund_state_of_funds"), {"d": as_of, "funds": missing})
        frame = pd.concat([f for f in (frame, older) if len(f)], ignore_index=True) if len(older) else frame
    return frame.reindex(columns=FUND_STATE_COLUMNS)


def recent_rejections(conn: Connection, as_of: dt.date) -> pd.DataFrame:
    """Per (fund, trigger), its latest decided proposal up to ``as_of`` (within
    lifecycle.REJECTION_MEMORY_DAYS) when that decision was a rejection:
    lifecycle.DECISION_COLUMNS. A later approval of the trigger ends the memory."""
    frame = read_frame(conn, query_sql("recent_decisions"),
                       {"d": as_of, "since": as_of - dt.timedelta(days=lifecycle.REJECTION_MEMORY_DAYS),
                        "decided": list(lifecycle.DECIDED)}).reindex(columns=lifecycle.DECISION_COLUMNS)
    frame = frame[frame["status"] == lifecycle.REJECTED].reset_index(drop=True)
    frame["as_of_date"] = pd.to_datetime(frame["as_of_date"]).dt.date
    return frame.astype(dict.fromkeys(("fund_id", "trigger", "proposal_id", "reviewed_by", "review_note"), object))


# How far back the tracking reads look (calendar days): more than 60 business days.
TRACKING_LOOKBACK = dt.timedelta(days=120)


def tracking_history(conn: Connection, as_of: dt.date, fund_ids) -> pd.DataFrame:
    """The funds' own fund_tracking rows before ``as_of`` (their latest 59: with tonight's,
    the 60 of the longest realized tracking error): rebalance_core.tracking.HISTORY_COLUMNS."""
    from rebalance_core.tracking import HISTORY_COLUMNS, REALIZED_WINDOWS

    frame = read_frame(conn, query_sql("tracking_history"),
                       {"d": as_of, "since": as_of - TRACKING_LOOKBACK, "funds": sorted(fund_ids),
                        "n": max(REALIZED_WINDOWS) - 1})
    frame = frame.reindex(columns=HISTORY_COLUMNS)
    for column in ("nav_per_share", "index_level", "tracking_difference"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["model_id"] = frame["model_id"].astype(object)
    frame["fund_id"] = frame["fund_id"].astype(object)
    return frame


def price_history(conn: Connection, as_of: dt.date, security_ids) -> pd.DataFrame:
    """Closes of ``security_ids`` on the last 60 business dates before ``as_of`` in the
    warehouse (rebalance_core.tracking.PRICE_HISTORY_COLUMNS)."""
    from rebalance_core.tracking import COVARIANCE_RETURNS, PRICE_HISTORY_COLUMNS

    frame = read_frame(conn, query_sql("price_history"),
                       {"d": as_of, "since": as_of - TRACKING_LOOKBACK, "securities": sorted(security_ids),
                        "n": COVARIANCE_RETURNS})
    frame = frame.reindex(columns=PRICE_HISTORY_COLUMNS)
    frame["close_price"] = pd.to_numeric(frame["close_price"], errors="coerce").astype("float64")
    frame["security_id"] = frame["security_id"].astype(object)
    frame["as_of_date"] = pd.to_datetime(frame["as_of_date"])
    return frame
