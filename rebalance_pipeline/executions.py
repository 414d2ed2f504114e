"""The order desk's executions.csv: checked against the warehouse's proposals, and the
operator's word that an approved proposal was executed (``rebalance executed``, the review
view).

A row naming an unknown proposal, a proposal that is not approved, a side other than BUY or
SELL, a quantity that is not a number >= 0 or a status other than filled / cancelled is left
out of the night with a finding naming the file, the row, the column and the value; it never
stops the night. What the rows mean for a fund (its approval executed or not) is decided by
``rebalance_core.fund_state``.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rebalance_core import lifecycle
from rebalance_core.faults import FAULT_COLUMNS
from rebalance_core.fund_state import CANCELLED, EXECUTION_COLUMNS, FILLED, SOURCE_FILE, SOURCE_OPERATOR
from rebalance_pipeline.decisions import ReviewError
from rebalance_pipeline.warehouse import date_lock, query_sql, read_frame

FILE = "executions.csv"
DATASET = "executions"
SIDES = ("BUY", "SELL")
# A proposal in one of these states sent no orders: nothing of it can be executed (the
# lifecycle's word: the stored states with no ``execute`` move).
NOT_APPROVED = tuple(s for s in lifecycle.STATUS_STATES if not lifecycle.can(s, lifecycle.EXECUTE))
# Recorded with the night's rows (rebalance.execution.recorded_by).
FILE_RECORDER = "file:executions.csv"
POSITIONS_RECORDER = "rule:positions"


def known_proposals(conn: Connection, proposal_ids) -> pd.DataFrame:
    """proposal_id, fund_id, status of the ids that exist."""
    return read_frame(conn, query_sql("known_proposals"), {"ids": sorted(set(proposal_ids))})


def check_executions(rows: pd.DataFrame, known: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(the usable rows as EXECUTION_COLUMNS + source_row, source 'file'; validation results;
    faults) of the date's executions.csv rows, given the proposals their ids name."""
    rows = rows.reset_index(drop=True)
    text = {c: rows[c].astype(object).where(rows[c].notna(), "").astype(str).str.strip()
            for c in ("proposal_id", "security_id", "side")}
    status_raw = (rows["status"] if "status" in rows else pd.Series(None, index=rows.index)).astype(object)
    status = status_raw.where(status_raw.notna(), "").astype(str).str.strip().str.lower().replace("", FILLED)
    side = text["side"].str.upper()
    by_id = known.drop_duplicates("proposal_id").set_index("proposal_id")
    found_status = text["proposal_id"].map(by_id["status"]) if len(known) else pd.Series(None, index=rows.index)
    quantity = pd.to_numeric(rows["quantity"], errors="coerce")
    checks = [
        ("executions_known_proposal", "proposal_id", found_status.isna(),
         lambda i: "is not a proposal id"),
        ("executions_approved_proposal", "proposal_id", found_status.isin(NOT_APPROVED),
         lambda i: f"is a {found_status[i]} proposal, not an approved one"),
        ("executions_security", "security_id", text["security_id"] == "", lambda i: "is empty"),
        ("executions_side", "side", ~side.isin(SIDES), lambda i: "is not BUY or SELL"),
        ("executions_quantity", "quantity", quantity.isna() | (quantity < 0), lambda i: "is not a number >= 0"),
        ("executions_status", "status", ~status.isin((FILLED, CANCELLED)), lambda i: "is not filled or cancelled"),
    ]
    bad = pd.Series(False, index=rows.index)
    results, faults = [], []
    for check, column, failed, why in checks:
        for i in rows.index[failed.to_numpy()]:
            value = rows.loc[i, column] if column in rows else None
            shown = ("(empty)" if value is None or pd.isna(value) or str(value).strip() == ""
                     else repr(f"{value:g}") if isinstance(value, float) else repr(str(value)))
            faults.append({"dataset": DATASET, "check": check, "source_row": rows.loc[i, "source_row"],
                           "fund_id": None, "security_id": text["security_id"][i] or None, "model_id": None,
                           "message": f"{FILE} row {rows.loc[i, 'source_row']}, column {column}: value "
                                      f"{shown} {why(i)}; the row is left out"})
        results.append({"dataset": DATASET, "check": check, "success": not failed.any(),
                        "failed_rows": int(failed.sum()), "detail": None})
        bad |= failed
    good = rows[~bad]
    usable = pd.DataFrame({"fund_id": text["proposal_id"][~bad].map(by_id["fund_id"]) if len(known) else None,
                           "proposal_id": text["proposal_id"][~bad], "security_id": text["security_id"][~bad],
                           "side": side[~bad], "quantity": quantity[~bad].astype("float64"),
                           "price": pd.to_numeric(good["price"], errors="coerce").astype("float64"),
                           "status": status[~bad], "source": SOURCE_FILE, "source_row": good["source_row"]})
    faults_frame = pd.DataFrame(faults, columns=FAULT_COLUMNS) if faults else pd.DataFrame(columns=FAULT_COLUMNS)
    return (usable.reindex(columns=[*EXECUTION_COLUMNS, "source_row"]).reset_index(drop=True),
            pd.DataFrame(results, columns=["dataset", "check", "success", "failed_rows", "detail"]), faults_frame)


def record_operator_word(engine: Engine, proposal_id: str, by: str, note: str | None = None,
                         cancelled: bool = False) -> dict:
    """An operator's word that the approved proposal's orders were all executed (or all
    cancelled): one execution row per order, source 'operator', kept with who and when. It
    belongs to the latest published night, so the next night's fund state reads it."""
    if not by or not by.strip():
        raise ReviewError("the operator's name is needed (--by)")
    if any("\x00" in (t or "") for t in (proposal_id, by, note)):
        raise ReviewError("a NUL character cannot be part of a proposal id, a name or a note")
    status = CANCELLED if cancelled else FILLED
    with engine.begin() as conn:
        found = conn.execute(sa.text(query_sql("proposal_date_fund_status")), {"id": proposal_id}).first()
        if found is None:
            raise ReviewError(f"no proposal {proposal_id}")
        date_lock(conn, found.as_of_date)
        if not lifecycle.can(found.status, lifecycle.EXECUTE):
            raise ReviewError(f"proposal {proposal_id} is {found.status}: only an approved proposal's orders can be "
                              "marked executed or cancelled")
        night = conn.execute(sa.text(query_sql("latest_night"))).scalar()
        night = max(night or found.as_of_date, found.as_of_date)
        rows = conn.execute(sa.text(query_sql("record_operator_executions")), {
            "night": night, "status": status, "source": SOURCE_OPERATOR, "note": note, "by": by.strip(),
            "id": proposal_id, "d": found.as_of_date}).all()
        if not rows:   # an approved proposal without trades: one row says it is done
            rows = conn.execute(sa.text(query_sql("record_operator_execution_without_trades")), {
                "night": night, "id": proposal_id, "status": status, "source": SOURCE_OPERATOR, "note": note,
                "by": by.strip()}).all()
    return {"proposal_id": proposal_id, "fund_id": found.fund_id, "as_of_date": found.as_of_date,
            "night": night if isinstance(night, dt.date) else found.as_of_date, "status": status, "orders": len(rows),
            "recorded_by": by.strip(), "recorded_at": rows[0].recorded_at}


def proposal_executions(engine: Engine, proposal_id: str) -> list[dict]:
    """What was reported done of a proposal, grouped by night, source and status (the review
    view's proposal page): as_of_date, source, status, orders, recorded_by, recorded_at, note."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(query_sql("proposal_executions")), {"id": proposal_id}).mappings().all()]


def last_operator_word(engine: Engine, proposal_id: str) -> dict | None:
    """The latest operator's word on the proposal (status, recorded_by), or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.text(query_sql("last_operator_word")), {"id": proposal_id, "s": SOURCE_OPERATOR}).mappings().first()
    return dict(row) if row else None
