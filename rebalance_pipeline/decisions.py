"""Operators' review decisions: approve or reject a proposal, four eyes, the audit trail.

The one decision function of the CLI, the review view and its JSON API; the lifecycle
(``rebalance_core.lifecycle.transition``) decides, this module looks up the facts and applies
its answer. ``rebalance_pipeline.warehouse`` re-exports these names (``warehouse.decide``).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rebalance_core import lifecycle
from rebalance_core.schema import (
    APPROVED,
    AWAITING_PERSON,
    PENDING,
    PENDING_SECOND,
    REJECTED,
    SUPERSEDED,
)
from rebalance_pipeline.warehouse import approval_twins, date_lock, query_sql


class ReviewError(Exception):
    """A decision that cannot be taken (unknown, already decided or superseded proposal)."""


class ProposalNotFound(ReviewError):
    """No proposal has that id."""


class FourEyesError(ReviewError):
    """The second approval of a proposal was asked of the person who gave its first."""


def four_eyes_threshold(conn: Connection, fund_id: str, as_of: dt.date):
    """The fund's ``second_approval_notional`` in force on ``as_of`` (None: one approval is enough)."""
    return conn.execute(sa.text(query_sql("four_eyes_threshold")), {"f": fund_id, "d": as_of}).scalar()


def gross_notional(conn: Connection, proposal_id: str, as_of: dt.date):
    """Sum of the proposal's trades' notional (NUMERIC, the fund's base currency)."""
    return conn.execute(sa.text(query_sql("proposal_gross_notional")), {"id": proposal_id, "d": as_of}).scalar_one()


def decide(engine: Engine, proposal_id: str, decision: str, by: str, note: str | None = None,
           channel: str = "cli") -> dict:
    """Record an operator's approval or rejection, once; return the proposal's new state.

    The one decision function of the CLI, the review view and its JSON API (they differ only
    in ``channel``). Four eyes: approving a pending proposal whose gross notional is above its
    fund's ``second_approval_notional`` records a first approval (status
    ``pending_second_approval``); the second must come from someone else (``FourEyesError``);
    a rejection at either stage is final.
    """
    _check_decision(decision, by, proposal_id, note)
    with engine.begin() as conn:
        return _decide_in(conn, proposal_id, decision, by.strip(), note, channel)


def decide_many(engine: Engine, proposal_ids: list[str], decision: str, by: str, note: str | None = None,
                channel: str = "cli", chunk: int = 200) -> list[dict]:
    """``decide`` for each id in order, each on its own (a refusal undoes nothing else):
    ``{"proposal_id", "ok", "status", "detail", "state"}`` per id. Decisions are committed
    ``chunk`` at a time, each in a savepoint: the same rules, a fraction of the commits."""
    _check_decision(decision, by, None, note)
    ids = list(dict.fromkeys(proposal_ids))
    results = []
    for start in range(0, len(ids), chunk):
        with engine.begin() as conn:
            for proposal_id in ids[start:start + chunk]:
                savepoint = conn.begin_nested()
                try:
                    if "\x00" in proposal_id:
                        raise ProposalNotFound(f"no proposal {proposal_id!r}")
                    state = _decide_in(conn, proposal_id, decision, by.strip(), note, channel)
                except ReviewError as exc:
                    savepoint.rollback()
                    results.append({"proposal_id": proposal_id, "ok": False, "status": None, "detail": str(exc),
                                    "state": None})
                else:
                    savepoint.commit()
                    results.append({"proposal_id": proposal_id, "ok": True, "status": state["status"],
                                    "detail": None, "state": state})
    return results


def _check_decision(decision: str, by: str, proposal_id: str | None, note: str | None) -> None:
    if decision not in (APPROVED, REJECTED):
        raise ValueError(f"decision must be {APPROVED!r} or {REJECTED!r}")
    if not by or not by.strip():
        raise ReviewError("a decision needs the reviewer's name")
    if any("\x00" in (text or "") for text in (by, proposal_id, note)):
        raise ReviewError("a NUL character cannot be part of a proposal id, a name or a note")
    if lifecycle.is_rule_name(by):
        # The audit tells rule approvals (channel 'rule', V011) from people's by this prefix.
        raise ReviewError(f"reviewer name {by.strip()!r} is reserved: names starting with 'rule:' mark decisions "
                          "taken by a rule")


def _decide_in(conn: Connection, proposal_id: str, decision: str, by: str, note: str | None, channel: str) -> dict:
    """Look up the facts, ask the lifecycle (``rebalance_core.lifecycle.transition``), apply its answer."""
    found = conn.execute(sa.text(query_sql("proposal_date_and_fund")), {"id": proposal_id}).first()
    if found is None:
        raise ProposalNotFound(f"no proposal {proposal_id}")
    # Same lock as the nightly publish: a rerun cannot replace a proposal mid-decision.
    date_lock(conn, found.as_of_date)
    row = conn.execute(sa.text(query_sql("proposal_review_state_for_update")), {"id": proposal_id}).first()
    if row is None:
        raise ReviewError(f"proposal {proposal_id} was replaced by a rerun of its date; review the new one")
    event = lifecycle.APPROVE if decision == APPROVED else lifecycle.REJECT
    facts: dict = {}
    twin = None
    if event == lifecycle.APPROVE and row.status in AWAITING_PERSON:
        twins = approval_twins(conn, [proposal_id])
        twin = twins.iloc[0] if len(twins) else None
        if row.status == PENDING:
            threshold = four_eyes_threshold(conn, found.fund_id, found.as_of_date)
            gross = gross_notional(conn, proposal_id, found.as_of_date) if threshold is not None else None
            facts = {"gross": gross, "threshold": threshold}
    try:
        step = lifecycle.transition(row.status, event, by=by, first_approved_by=row.first_approved_by,
                                    twin=twin is not None, **facts)
    except lifecycle.IllegalTransition:
        raise ReviewError(_refusal(conn, proposal_id, found, row, decision)) from None
    except lifecycle.FourEyesViolation:
        raise FourEyesError(
            f"proposal {proposal_id} needs a second approval by someone other than {row.first_approved_by}, "
            f"who gave the first at {row.first_approved_at:%Y-%m-%d %H:%M %Z} (four eyes); ask another reviewer"
        ) from None
    except lifecycle.TwinApproval:
        how = "approved" if twin.twin_status == APPROVED else "first-approved (awaiting its second approval)"
        raise ReviewError(f"fund {found.fund_id} already has {how} proposal {twin.twin_id} for "
                          f"{twin.twin_date}; approving {proposal_id} too would trade the same drift twice "
                          "(reject one of them)") from None
    except lifecycle.LifecycleError as exc:
        raise ReviewError(f"proposal {proposal_id}: {exc}") from None
    params = {"by": by, "note": note, "id": proposal_id}
    if step.target == PENDING_SECOND:
        state = conn.execute(sa.text(query_sql("record_first_approval")),
                             {**params, "s": step.target}).mappings().one()
        _audit(conn, proposal_id, step.audit, by, state["first_approved_at"], note, channel)
        return {**state, "gross_notional": facts["gross"], "second_approval_notional": facts["threshold"]}
    state = conn.execute(sa.text(query_sql("record_review_decision")), {**params, "s": step.target}).mappings().one()
    _audit(conn, proposal_id, step.audit, by, state["reviewed_at"], note, channel)
    return dict(state)


def _refusal(conn: Connection, proposal_id: str, found, row, decision: str) -> str:
    """Why a proposal that no longer waits for a person cannot be decided, in words."""
    if row.status == SUPERSEDED:
        # Say what superseded it: the fund's latest later night (a newer proposal, or none).
        later = conn.execute(sa.text(query_sql("later_night")), {"f": found.fund_id, "d": found.as_of_date}).first()
        what = ("a later night" if later is None
                else f"a later night: fund {found.fund_id} blocked on {later.as_of_date}: {later.blocked_reason}"
                if later.status == "blocked"
                else f"newer proposal {later.proposal_id} of {later.as_of_date}" if later.proposal_id
                else f"a later night: fund {found.fund_id} in band on {later.as_of_date}, no newer proposal")
        return f"proposal {proposal_id} is superseded by {what}; it cannot be {decision}"
    at = f" at {row.reviewed_at:%Y-%m-%d %H:%M %Z}" if row.reviewed_at is not None else ""
    return f"proposal {proposal_id} was already {row.status} by {row.reviewed_by}{at}"


def _audit(conn: Connection, proposal_id: str, decision: str, by: str, at, note: str | None, channel: str) -> None:
    conn.execute(sa.text(query_sql("audit_review_decision")),
                 {"id": proposal_id, "s": decision, "by": by, "at": at, "note": note, "channel": channel})
