"""One proposal (``/proposals/<id>``, ``/api/proposals/<id>``) and its decision."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from rebalance_core.schema import APPROVED, FIRST_APPROVAL, PENDING_SECOND, REJECTED
from rebalance_pipeline import executions
from rebalance_pipeline.review import queries
from rebalance_pipeline.review.web import (
    CAN_DECIDE,
    CAN_VIEW,
    Decision,
    MayDecide,
    Store,
    check_same_origin,
    decide,
    form_model,
    json_records,
    jsonable,
    records,
    render,
)

router = APIRouter()
DONE_MESSAGES = {APPROVED: "Proposal approved.", REJECTED: "Proposal rejected.",
                 FIRST_APPROVAL: "First approval recorded: the proposal now needs a second approval by someone else."}
# The operator's word on an approved proposal's orders (rebalance_pipeline.executions).
EXECUTED_MESSAGES = {"filled": "Its orders are recorded as executed: the next night stops holding the fund back.",
                     "cancelled": "Its orders are recorded as cancelled: the next night stops holding the fund back."}


def _done_message(engine, proposal_id: str, user, done: str | None) -> str | None:
    """The confirmation after a decision, only when the warehouse says so: the proposal's
    latest audit row is that decision, by this user. ``?done=`` alone claims nothing."""
    if done in EXECUTED_MESSAGES:
        word = executions.last_operator_word(engine, proposal_id)
        if word is None or word["status"] != done or word["recorded_by"] != user.get_name():
            return None
        return EXECUTED_MESSAGES[done]
    if done not in DONE_MESSAGES:
        return None
    last = queries.last_review(engine, proposal_id)
    if last is None or last["decision"] != done or last["decided_by"] != user.get_name():
        return None
    return DONE_MESSAGES[done]


@router.get("/proposals/{proposal_id:path}", response_class=HTMLResponse, dependencies=[CAN_VIEW],
            name="proposal_page")
def proposal_page(request: Request, user: GetUserDep, may_decide: MayDecide, store: Store, proposal_id: str,
                  done: str | None = None):
    detail = queries.proposal_detail(store.engine, proposal_id)
    if detail is None:
        raise HTTPException(404, f"no proposal {proposal_id}")
    p = detail.proposal
    return render(request, user, may_decide, "proposal.html", {
        "p": p, "trades": records(detail.trades), "reviews": records(detail.reviews),
        "export": detail.export, "message": _done_message(store.engine, proposal_id, user, done),
        "first_approver_is_me": (p["status"] == PENDING_SECOND and (p.get("first_approved_by") or "").casefold()
                                 == user.get_name().casefold()),
        "later": queries.later_night_text(p["fund_id"], detail.later),
        "compliance": records(queries.compliance_results(store.engine, proposal_id)),
        "rejected_before": queries.rejection_text(detail.rejected_before),
        "executions": executions.proposal_executions(store.engine, proposal_id)})


@router.post("/proposals/{proposal_id:path}/decision", dependencies=[CAN_DECIDE], name="decide_form")
def decide_form(request: Request, user: GetUserDep, store: Store, proposal_id: str,
                decision: Annotated[str, Form()], csrf_token: Annotated[str | None, Form()] = None,
                note: Annotated[str | None, Form(max_length=2000)] = None):
    check_same_origin(request, user, csrf_token)
    body = form_model(Decision, decision=decision, note=note or None)
    state = decide(store.engine, user, proposal_id, body, channel="ui")
    done = FIRST_APPROVAL if state["status"] == PENDING_SECOND else body.decision
    url = request.url_for("proposal_page", proposal_id=proposal_id).path
    return RedirectResponse(f"{url}?{urlencode({'done': done})}", status_code=303)


@router.post("/proposals/{proposal_id:path}/executed", dependencies=[CAN_DECIDE], name="executed_form")
def executed_form(request: Request, user: GetUserDep, store: Store, proposal_id: str,
                  outcome: Annotated[str, Form(pattern="^(filled|cancelled)$")],
                  csrf_token: Annotated[str | None, Form()] = None,
                  note: Annotated[str | None, Form(max_length=2000)] = None):
    """The operator's word that an approved proposal's orders were all executed (or cancelled):
    ``rebalance executed``'s, as the signed-in user."""
    from rebalance_pipeline import warehouse

    check_same_origin(request, user, csrf_token)
    try:
        executions.record_operator_word(store.engine, proposal_id, user.get_name(), note or None,
                                        cancelled=outcome == "cancelled")
    except warehouse.ReviewError as exc:
        raise HTTPException(404 if str(exc).startswith("no proposal") else 409, str(exc)) from None
    url = request.url_for("proposal_page", proposal_id=proposal_id).path
    return RedirectResponse(f"{url}?{urlencode({'done': outcome})}", status_code=303)


@router.get("/api/proposals/{proposal_id:path}", dependencies=[CAN_VIEW])
def api_proposal(store: Store, proposal_id: str):
    detail = queries.proposal_detail(store.engine, proposal_id)
    if detail is None:
        raise HTTPException(404, f"no proposal {proposal_id}")
    return {"proposal": {k: jsonable(v) for k, v in detail.proposal.items()},
            "trades": json_records(detail.trades), "reviews": json_records(detail.reviews),
            "export": {k: jsonable(v) for k, v in detail.export.items()} if detail.export else None}


@router.post("/api/proposals/{proposal_id:path}/decision", dependencies=[CAN_DECIDE])
def api_decide(request: Request, user: GetUserDep, store: Store, proposal_id: str, body: Decision):
    check_same_origin(request, user, request.headers.get("x-csrf-token"))
    state = decide(store.engine, user, proposal_id, body, channel="api")
    return {k: jsonable(v) for k, v in state.items()}
