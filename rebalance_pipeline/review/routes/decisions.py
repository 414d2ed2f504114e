"""Bulk decisions by selection (``POST /decisions``, ``/api/decisions``) and where the
decided proposals stand (``GET /decisions``).

The results page states only what the warehouse says: which of the listed proposals are now
in the decision's status by the signed-in user. Nothing in its URL is taken as a count.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import pandas as pd
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from rebalance_core.schema import APPROVED, PENDING_SECOND, REJECTED
from rebalance_pipeline.review import queries
from rebalance_pipeline.review.web import (
    CAN_DECIDE,
    CAN_VIEW,
    MAX_BULK,
    BulkDecision,
    MayDecide,
    Store,
    check_same_origin,
    decide_many,
    form_model,
    records,
    render,
)

router = APIRouter()


def decided_by(states: pd.DataFrame, decision: str, user_name: str) -> pd.Series:
    """Per proposal: is it where ``decision`` by this user leaves it (an approval that became a
    first approval counts: the proposal now waits for someone else)?"""
    if states.empty or decision not in (APPROVED, REJECTED):
        return pd.Series(False, index=states.index, dtype=bool)
    me = user_name.casefold()
    reviewer = states["reviewed_by"].fillna("").astype(str).str.casefold()
    first = states["first_approved_by"].fillna("").astype(str).str.casefold()
    done = (states["status"] == decision) & (reviewer == me)
    if decision == APPROVED:
        done |= (states["status"] == PENDING_SECOND) & (first == me)
    return done.fillna(False).astype(bool)


def results_context(states: pd.DataFrame, decision: str, user_name: str, refused: dict[str, str] | None = None,
                    counted: int | None = None) -> dict:
    done = decided_by(states, decision, user_name)
    rows = records(states.assign(mine=done.to_numpy(), refused=states["proposal_id"].map(refused or {})))
    return {"decision": decision if decision in (APPROVED, REJECTED) else "", "decided": int(done.sum()),
            "first_approvals": int((done & (states["status"] == PENDING_SECOND)).sum()),
            "results": rows, "counted": counted, "gross": queries.gross_by_currency(states[done])}


@router.post("/decisions", response_class=HTMLResponse, dependencies=[CAN_DECIDE], name="decide_many_form")
def decide_many_form(request: Request, user: GetUserDep, store: Store, decision: Annotated[str, Form()],
                     proposal_id: Annotated[list[str] | None, Form()] = None,
                     csrf_token: Annotated[str | None, Form()] = None,
                     note: Annotated[str | None, Form(max_length=2000)] = None):
    check_same_origin(request, user, csrf_token)
    if not proposal_id:
        raise HTTPException(422, "select at least one proposal")
    body = form_model(BulkDecision, decision=decision, note=note or None, proposal_ids=list(proposal_id))
    results = decide_many(store.engine, user, body.proposal_ids, body.decision, body.note, channel="ui")
    # Post/Redirect/Get: reloading the result page shows where the proposals stand now and
    # decides nothing again.
    query = urlencode([("decision", body.decision)] + [("id", r["proposal_id"]) for r in results], doseq=True)
    return RedirectResponse(f"{request.url_for('decisions_page').path}?{query}", status_code=303)


@router.get("/decisions", response_class=HTMLResponse, dependencies=[CAN_VIEW], name="decisions_page")
def decisions_page(request: Request, user: GetUserDep, may_decide: MayDecide, store: Store, decision: str = "",
                   id: Annotated[list[str] | None, Query(max_length=MAX_BULK)] = None):
    states = queries.proposal_states(store.engine, list(dict.fromkeys(id or []))[:MAX_BULK])
    return render(request, user, may_decide, "decisions.html", results_context(states, decision, user.get_name()))


@router.post("/api/decisions", dependencies=[CAN_DECIDE])
def api_decide_many(request: Request, user: GetUserDep, store: Store, body: BulkDecision):
    check_same_origin(request, user, request.headers.get("x-csrf-token"))
    results = decide_many(store.engine, user, body.proposal_ids, body.decision, body.note, channel="api")
    return {"decided": sum(r["ok"] for r in results), "refused": sum(not r["ok"] for r in results),
            "results": results}
