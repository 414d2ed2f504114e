"""The exception queue (``/``): what needs a person today, and bulk decisions by filter.

Proposals waiting for a first or a second approval, the funds blocked on the latest night and
those whose holdings fail a compliance rule that night
(``queries.queue_page``), largest drift first, 50 a page, filtered by status, model, policy,
base currency and size (gross notional in the fund's base currency, or turnover). A bulk
decision by filter is counted first (``/queue/confirm``: how many proposals, what gross
notional per currency); the confirmation form carries those proposals' ids, signed, and the
submit decides exactly them, each only if still waiting (a proposal a newer night published
meanwhile was not counted and is not decided; one superseded meanwhile is refused).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated
from urllib.parse import urlencode

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from rebalance_core.schema import APPROVED, POLICIES, REJECTED
from rebalance_pipeline.review import csrf, queries
from rebalance_pipeline.review.routes.datadocs import docs_link
from rebalance_pipeline.review.routes.decisions import results_context
from rebalance_pipeline.review.web import (
    CAN_DECIDE,
    CAN_VIEW,
    MAX_BULK_FILTER,
    FilterDecision,
    MayDecide,
    Store,
    check_same_origin,
    decide_many,
    form_model,
    json_records,
    jsonable,
    parse_date,
    parse_number,
    records,
    render,
    secret_key,
    session_id,
)

router = APIRouter()


@dataclasses.dataclass(frozen=True)
class QueueQuery:
    """The queue's query parameters as typed (text, numbers as given)."""

    date: str | None = None
    status: str | None = None
    model: str | None = None
    policy: str | None = None
    currency: str | None = None
    gross_min: str | None = None
    gross_max: str | None = None
    turnover_min: str | None = None
    turnover_max: str | None = None

    def filter(self, engine, turnover_scale: float) -> queries.QueueFilter:
        dates = queries.business_dates(engine, limit=1)
        latest = dates[0] if dates else None
        try:
            return queries.QueueFilter(
                as_of=parse_date(self.date, latest), status=self.status or None, model=self.model or None,
                policy=self.policy or None, currency=(self.currency or "").strip().upper() or None,
                gross_min=parse_number("gross_min", self.gross_min), gross_max=parse_number("gross_max", self.gross_max),
                turnover_min=parse_number("turnover_min", self.turnover_min, turnover_scale),
                turnover_max=parse_number("turnover_max", self.turnover_max, turnover_scale))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    def params(self, **changes) -> dict:
        values = {**dataclasses.asdict(self), **changes}
        return {k: v for k, v in values.items() if v not in (None, "")}


def _queue_query(date: str | None = None, status: str | None = None, model: str | None = None,
                 policy: str | None = None, currency: str | None = None, gross_min: str | None = None,
                 gross_max: str | None = None, turnover_min: str | None = None,
                 turnover_max: str | None = None) -> QueueQuery:
    return QueueQuery(date, status, model, policy, currency, gross_min, gross_max, turnover_min, turnover_max)


Filters = Annotated[QueueQuery, Depends(_queue_query)]
PERCENT = 0.01   # the page takes turnover in percent of NAV; the JSON API in fractions


@router.get("/", response_class=HTMLResponse, dependencies=[CAN_VIEW], name="queue_page")
def queue_page(request: Request, user: GetUserDep, may_decide: MayDecide, store: Store, filters: Filters,
               page: Annotated[int, Query(ge=1, le=100_000)] = 1):
    flt = filters.filter(store.engine, PERCENT)
    result = queries.queue_page(store.engine, flt, offset=(page - 1) * queries.QUEUE_PAGE_SIZE)
    path = request.url_for("queue_page").path
    docs = docs_link(request, flt.as_of)

    def link(**changes) -> str:
        return f"{path}?{urlencode(filters.params(**changes))}"

    proposals = result.totals[result.totals["kind"] == "proposal"]
    return render(request, user, may_decide, "queue.html", {
        "as_of": flt.as_of, "filters": filters, "rows": records(result.rows), "total": result.total,
        "counts": result.counts, "page_no": page, "page_size": queries.QUEUE_PAGE_SIZE,
        "proposal_total": int(proposals["items"].sum()) if len(proposals) else 0,
        "gross": [(c, g) for c, g in _gross(proposals)], "statuses": queries.QUEUE_STATUSES, "policies": POLICIES,
        "docs_link": docs, "link": link, "filtered": flt.is_filtered,
        "confirm_link": lambda decision: (f"{request.url_for('queue_confirm').path}?"
                                          f"{urlencode(filters.params(decision=decision))}")})


def _gross(totals) -> list[tuple[str, object]]:
    if totals.empty:
        return []
    frame = totals.assign(base_currency=totals["base_currency"].fillna("?"))
    sums = frame.groupby("base_currency")["gross"].sum(min_count=1)
    return sorted(((c, g) for c, g in sums.items()), key=lambda item: -(float(item[1]) if item[1] is not None
                                                                         and item[1] == item[1] else 0))


def _count(engine, flt: queries.QueueFilter) -> tuple[list[str], dict]:
    """The proposals a bulk decision by filter would decide, and what the confirmation says."""
    if flt.status in queries.FUND_EXCEPTIONS:
        raise HTTPException(422, f"{flt.status} exceptions are funds, with no proposal to decide; choose a proposal "
                                 "status")
    frame = queries.queue_proposals(engine, flt, MAX_BULK_FILTER + 1)
    if len(frame) > MAX_BULK_FILTER:
        raise HTTPException(422, f"the filter selects more than {MAX_BULK_FILTER:,} proposals; one bulk decision "
                                 "takes at most that many: narrow the filter (model, policy, size)")
    by_status = frame["status"].value_counts().to_dict() if len(frame) else {}
    return list(frame["proposal_id"]), {"count": len(frame), "gross": queries.gross_by_currency(frame),
                                        "by_status": {k: int(v) for k, v in by_status.items()}}


def _decision(value: str) -> str:
    if value not in (APPROVED, REJECTED):
        raise HTTPException(422, "decision must be approved or rejected")
    return value


@router.get("/queue/confirm", response_class=HTMLResponse, dependencies=[CAN_DECIDE], name="queue_confirm")
def queue_confirm(request: Request, user: GetUserDep, may_decide: MayDecide, store: Store, filters: Filters,
                  decision: str):
    decision = _decision(decision)
    flt = filters.filter(store.engine, PERCENT)
    ids, summary = _count(store.engine, flt)
    selection = csrf.sign_selection(secret_key(), str(user.get_id()), session_id(request), decision, ids)
    return render(request, user, may_decide, "confirm.html", {
        "decision": decision, "summary": summary, "selection": selection if ids else None, "filters": filters,
        "as_of": flt.as_of, "back": f"{request.url_for('queue_page').path}?{urlencode(filters.params())}"})


def _decide_selection(request: Request, user, store, body: FilterDecision, channel: str) -> tuple[str, list, list]:
    try:
        decision, ids = csrf.read_selection(secret_key(), str(user.get_id()), session_id(request), body.selection)
    except csrf.CsrfError as exc:
        raise HTTPException(403, str(exc)) from None
    return decision, ids, decide_many(store.engine, user, ids, _decision(decision), body.note, channel=channel)


@router.post("/queue/decide", response_class=HTMLResponse, dependencies=[CAN_DECIDE], name="queue_decide")
def queue_decide(request: Request, user: GetUserDep, may_decide: MayDecide, store: Store,
                 selection: Annotated[str, Form(max_length=1_000_000)],
                 csrf_token: Annotated[str | None, Form()] = None,
                 note: Annotated[str | None, Form(max_length=2000)] = None):
    check_same_origin(request, user, csrf_token)
    body = form_model(FilterDecision, selection=selection, note=note or None)
    decision, ids, results = _decide_selection(request, user, store, body, "ui")
    states = queries.proposal_states(store.engine, ids)
    refused = {r["proposal_id"]: r["detail"] for r in results if not r["ok"]}
    # Rendered here, not redirected: thousands of ids do not fit a URL. A reload would only
    # be refused again proposal by proposal (a decision is taken once).
    return render(request, user, may_decide, "decisions.html",
                  results_context(states, decision, user.get_name(), refused, counted=len(ids)))


# ---------------------------------------------------------------------- JSON API
@router.get("/api/queue", dependencies=[CAN_VIEW])
def api_queue(store: Store, filters: Filters, limit: Annotated[int, Query(ge=1, le=1000)] = queries.QUEUE_PAGE_SIZE,
              offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0):
    flt = filters.filter(store.engine, 1.0)
    result = queries.queue_page(store.engine, flt, offset=offset, limit=limit)
    return {"as_of_date": jsonable(flt.as_of), "total": result.total, "counts": result.counts,
            "totals": json_records(result.totals), "items": json_records(result.rows)}


@router.get("/api/queue/confirm", dependencies=[CAN_DECIDE])
def api_queue_confirm(request: Request, user: GetUserDep, store: Store, filters: Filters, decision: str):
    decision = _decision(decision)
    ids, summary = _count(store.engine, filters.filter(store.engine, 1.0))
    return {"decision": decision, "count": summary["count"], "by_status": summary["by_status"],
            "gross": [{"currency": c, "gross_notional": jsonable(g)} for c, g in summary["gross"]],
            "selection": csrf.sign_selection(secret_key(), str(user.get_id()), session_id(request), decision, ids)}


@router.post("/api/queue/decide", dependencies=[CAN_DECIDE])
def api_queue_decide(request: Request, user: GetUserDep, store: Store, body: FilterDecision):
    check_same_origin(request, user, request.headers.get("x-csrf-token"))
    decision, ids, results = _decide_selection(request, user, store, body, "api")
    return {"decision": decision, "counted": len(ids), "decided": sum(r["ok"] for r in results),
            "refused": sum(not r["ok"] for r in results), "results": results}
