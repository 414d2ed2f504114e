"""The "Rebalance" review view: a FastAPI app the Airflow api-server mounts at ``/rebalance``.

Who may do what is Airflow's decision, not ours: every route takes the signed-in user from
Airflow's own security dependency (``GetUserDep``) and checks it with ``requires_access_dag``
against the nightly DAG, so the UI and the REST API agree. Reading needs GET on the DAG
(Airflow's Viewer role and up); deciding needs PUT on it (User/Op/Admin in the simple auth
manager, "can edit DAG:rebalance_nightly" with FAB).

HTML pages render with Jinja2 autoescaping; forms that change state carry a CSRF token
(``csrf.py``). The JSON API under ``/api`` serves the same data; called with a bearer token
it needs no CSRF token (a browser never attaches one on its own).
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import pandas as pd
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.configuration import conf
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security.utils import get_authorization_scheme_param
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from rebalance_pipeline import formatting
from rebalance_pipeline.fund_states import STATE_BADGES, STATE_LABELS
from rebalance_pipeline.review import csrf, queries
from rebalance_pipeline.review.charts import drift_chart, tracking_chart

# The permission to review is the permission on the DAG that makes the proposals.
REVIEW_DAG_ID = "rebalance_nightly"
CAN_VIEW = Depends(requires_access_dag("GET", param_dag_id=REVIEW_DAG_ID))
CAN_DECIDE = Depends(requires_access_dag("PUT", param_dag_id=REVIEW_DAG_ID))

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                "form-action 'self'; frame-ancestors 'self'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
DONE_MESSAGES = {"approved": "Proposal approved.", "rejected": "Proposal rejected."}
MAX_BULK = 1000   # proposals one bulk decision may carry
REVIEW_JS = """
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("select-all");
  if (!all) return;
  const boxes = () => document.querySelectorAll("input[name=proposal_id]");
  all.hidden = false;
  all.addEventListener("change", () => boxes().forEach((box) => { box.checked = all.checked; }));
});
"""


class Decision(BaseModel):
    decision: str = Field(pattern="^(approved|rejected)$")
    note: str | None = Field(default=None, max_length=2000)


class BulkDecision(Decision):
    proposal_ids: list[str] = Field(min_length=1, max_length=MAX_BULK)


class _Warehouse:
    """The engine, created on first use (the api-server may start before the warehouse)."""

    @cached_property
    def engine(self):
        from rebalance_pipeline import warehouse

        engine = warehouse.get_engine()
        warehouse.migrate(engine)
        return engine


def _secret_key() -> str:
    return conf.get("api", "secret_key")


def _airflow_path() -> str:
    """The path Airflow is served under ('' at the root), from ``[api] base_url``."""
    return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def _may_decide(user) -> bool:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().is_authorized_dag(method="PUT", details=DagDetails(id=REVIEW_DAG_ID), user=user)


def _uses_bearer_token(request: Request) -> bool:
    """Whether Airflow authenticates this request by its Authorization header, not the cookie.

    Same parsing as the HTTPBearer scheme behind Airflow's ``get_user``: a header it would
    ignore (``Bearer`` with blank credentials) means the cookie decides, and so CSRF applies.
    """
    scheme, credentials = get_authorization_scheme_param(request.headers.get("authorization"))
    return scheme.lower() == "bearer" and bool(credentials)


def _check_csrf(request: Request, user, token: str | None) -> None:
    """Refuse a state change a browser may have been tricked into sending."""
    if _uses_bearer_token(request):
        return   # the caller sent the credential itself: not an ambient cookie
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise HTTPException(403, "cross-site request refused")
    try:
        csrf.verify(_secret_key(), str(user.get_id()), token)
    except csrf.CsrfError as exc:
        raise HTTPException(403, str(exc)) from None


def _parse_date(value: str | None, fallback: dt.date | None) -> dt.date | None:
    if not value:
        return fallback
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"date must be YYYY-MM-DD, got {value!r}") from None


# ------------------------------------------------------------------ template filters
def _blank(value) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


# One formatting policy with the CLI and the HTML report (rebalance_pipeline.formatting):
# money, percent, quantity, price, count, yes_no, band, timestamp, number.
TEMPLATES.env.filters.update(formatting.jinja_filters(blank="–"))
TEMPLATES.env.tests["blank"] = _blank
TEMPLATES.env.globals.update(state_badges=STATE_BADGES, state_labels=STATE_LABELS)


def _path_for(request: Request):
    """``url_for`` for templates, giving paths: links stay on the scheme and host the browser
    used (behind a TLS-terminating proxy too), as the CSP's form-action 'self' expects."""
    def path_for(name: str, /, **params) -> str:
        return request.url_for(name, **params).path
    return path_for


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if _blank(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def _jsonable(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if _blank(value):
        return None
    return value


def create_app() -> FastAPI:
    app = FastAPI(title="Rebalance review", docs_url=None, redoc_url=None, openapi_url=None)
    store = _Warehouse()

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith(f"{request.scope.get('root_path', '')}/api"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        if exc.status_code == 401:
            # Not signed in: Airflow's login page brings the user back here afterwards.
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{_airflow_path()}/api/v2/auth/login?{urlencode({'next': here})}",
                                    status_code=303)
        detail = exc.detail
        if exc.status_code == 403 and detail == "Forbidden":
            detail = (f"Your Airflow role may look at proposals but not decide them: deciding needs edit "
                      f"permission on the {REVIEW_DAG_ID} DAG (role User or above).")
        return TEMPLATES.TemplateResponse(request, "error.html", {"status": exc.status_code, "detail": detail},
                                          status_code=exc.status_code)

    def render(request: Request, user, template: str, context: dict, status_code: int = 200) -> HTMLResponse:
        may_decide = _may_decide(user)
        return TEMPLATES.TemplateResponse(request, template, {
            **context, "user_name": user.get_name(), "may_decide": may_decide, "url_for": _path_for(request),
            "csrf_token": csrf.issue(_secret_key(), str(user.get_id())) if may_decide else None,
        }, status_code=status_code)

    # -------------------------------------------------------------- pages
    @app.get("/review.js", name="review_js", include_in_schema=False)
    def review_js():
        # Progressive enhancement only ("select all" on the funds table); every page works without it.
        return Response(REVIEW_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})

    @app.get("/", response_class=HTMLResponse, dependencies=[CAN_VIEW], name="funds_page")
    def funds_page(request: Request, user: GetUserDep, date: str | None = None, status: str | None = None,
                   proposal_status: str | None = None, q: str | None = None, sort: str = "max_abs_drift",
                   order: str = "desc", page: Annotated[int, Query(ge=1, le=100_000)] = 1):
        dates = queries.business_dates(store.engine)
        as_of = _parse_date(date, dates[0] if dates else None)
        context = {"dates": dates, "as_of": as_of, "status": status or "", "proposal_status": proposal_status or "",
                   "q": q or "", "sort": sort, "order": order, "rows": [], "total": 0, "counts": {},
                   "statuses": queries.FUND_STATUSES, "proposal_statuses": queries.PROPOSAL_STATUSES,
                   "sort_keys": list(queries.SORT_KEYS), "page_no": max(page, 1), "page_size": 200}
        if as_of is not None:
            try:
                flt = queries.FundFilter(as_of=as_of, status=status or None, proposal_status=proposal_status or None,
                                         search=q or None, sort=sort, descending=order != "asc",
                                         offset=(max(page, 1) - 1) * 200)
            except ValueError as exc:
                raise HTTPException(422, str(exc)) from None
            result = queries.list_funds(store.engine, flt)
            context.update(rows=_records(result.rows), total=result.total, counts=result.counts)

        def link(**changes) -> str:
            params = {"date": as_of.isoformat() if as_of else None, "status": status, "proposal_status": proposal_status,
                      "q": q, "sort": sort, "order": order, **changes}
            return f"{request.url_for('funds_page').path}?{urlencode({k: v for k, v in params.items() if v})}"

        def sort_link(key: str) -> str:
            return link(sort=key, order="asc" if (sort == key and order != "asc") else "desc", page=None)

        context.update(link=link, sort_link=sort_link)
        return render(request, user, "funds.html", context)

    @app.get("/funds/{fund_id:path}", response_class=HTMLResponse, dependencies=[CAN_VIEW], name="fund_page")
    def fund_page(request: Request, user: GetUserDep, fund_id: str, date: str | None = None):
        dates = queries.business_dates(store.engine)
        as_of = _parse_date(date, dates[0] if dates else None)
        summary = queries.fund_summary(store.engine, as_of, fund_id) if as_of else None
        if summary is None:
            raise HTTPException(404, f"no results for fund {fund_id} on {as_of}")
        drift = queries.fund_drift(store.engine, as_of, fund_id)
        tracking = queries.fund_tracking(store.engine, fund_id, as_of)
        tonight = tracking[tracking["as_of_date"] == as_of] if len(tracking) else tracking
        return render(request, user, "fund.html", {
            "as_of": as_of, "fund": summary, "chart": drift_chart(drift), "holdings": _records(drift),
            "tracking": _records(tonight)[0] if len(tonight) else None, "tracking_chart": tracking_chart(tracking)
            if len(tracking) else None,
            "proposals": _records(queries.fund_proposals(store.engine, fund_id))})

    @app.get("/proposals/{proposal_id:path}", response_class=HTMLResponse, dependencies=[CAN_VIEW],
             name="proposal_page")
    def proposal_page(request: Request, user: GetUserDep, proposal_id: str, done: str | None = None):
        detail = queries.proposal_detail(store.engine, proposal_id)
        if detail is None:
            raise HTTPException(404, f"no proposal {proposal_id}")
        return render(request, user, "proposal.html", {
            "p": detail.proposal, "trades": _records(detail.trades), "reviews": _records(detail.reviews),
            "export": detail.export, "message": DONE_MESSAGES.get(done or ""),
            "later": queries.later_night_text(detail.proposal["fund_id"], detail.later),
            "compliance": _records(queries.compliance_results(store.engine, proposal_id)),
            "rejected_before": queries.rejection_text(detail.rejected_before)})

    @app.post("/proposals/{proposal_id:path}/decision", dependencies=[CAN_DECIDE], name="decide_form")
    def decide_form(request: Request, user: GetUserDep, proposal_id: str,
                    decision: Annotated[str, Form()], csrf_token: Annotated[str | None, Form()] = None,
                    note: Annotated[str | None, Form(max_length=2000)] = None):
        _check_csrf(request, user, csrf_token)
        body = _form_decision(Decision, decision=decision, note=note or None)
        _decide(store, user, proposal_id, body, channel="ui")
        url = request.url_for("proposal_page", proposal_id=proposal_id).path
        return RedirectResponse(f"{url}?{urlencode({'done': body.decision})}", status_code=303)

    @app.post("/decisions", response_class=HTMLResponse, dependencies=[CAN_DECIDE], name="decide_many_form")
    def decide_many_form(request: Request, user: GetUserDep, decision: Annotated[str, Form()],
                         proposal_id: Annotated[list[str] | None, Form()] = None,
                         csrf_token: Annotated[str | None, Form()] = None,
                         note: Annotated[str | None, Form(max_length=2000)] = None):
        _check_csrf(request, user, csrf_token)
        if not proposal_id:
            raise HTTPException(422, "select at least one proposal")
        body = _form_decision(BulkDecision, decision=decision, note=note or None, proposal_ids=list(proposal_id))
        results = _decide_many(store, user, body, channel="ui")
        # Post/Redirect/Get: reloading the result page shows where the proposals stand now and
        # decides nothing again.
        query = urlencode([("decision", body.decision), ("decided", sum(r["ok"] for r in results))]
                          + [("id", r["proposal_id"]) for r in results], doseq=True)
        return RedirectResponse(f"{request.url_for('decisions_page').path}?{query}", status_code=303)

    @app.get("/decisions", response_class=HTMLResponse, dependencies=[CAN_VIEW], name="decisions_page")
    def decisions_page(request: Request, user: GetUserDep, decision: str = "", decided: int = 0,
                       id: Annotated[list[str] | None, Query(max_length=MAX_BULK)] = None):  # noqa: A002
        states = queries.proposal_states(store.engine, list(dict.fromkeys(id or []))[:MAX_BULK])
        return render(request, user, "decisions.html", {
            "decision": decision if decision in DONE_MESSAGES else "", "decided": max(decided, 0),
            "results": _records(states)})

    # -------------------------------------------------------------- JSON API
    @app.get("/api/funds", dependencies=[CAN_VIEW])
    def api_funds(date: str | None = None, status: str | None = None, proposal_status: str | None = None,
                  q: str | None = None, sort: str = "max_abs_drift", order: str = "desc",
                  limit: Annotated[int, Query(ge=1, le=5000)] = 200,
                  offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0):
        dates = queries.business_dates(store.engine, limit=1)
        as_of = _parse_date(date, dates[0] if dates else None)
        if as_of is None:
            return {"as_of_date": None, "total": 0, "funds": []}
        try:
            flt = queries.FundFilter(as_of=as_of, status=status, proposal_status=proposal_status, search=q,
                                     sort=sort, descending=order != "asc", limit=min(max(limit, 1), 5000),
                                     offset=max(offset, 0))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        result = queries.list_funds(store.engine, flt)
        return {"as_of_date": as_of.isoformat(), "total": result.total, "counts": result.counts,
                "funds": [{k: _jsonable(v) for k, v in row.items()} for row in _records(result.rows)]}

    @app.get("/api/proposals/{proposal_id:path}", dependencies=[CAN_VIEW])
    def api_proposal(proposal_id: str):
        detail = queries.proposal_detail(store.engine, proposal_id)
        if detail is None:
            raise HTTPException(404, f"no proposal {proposal_id}")
        return {"proposal": {k: _jsonable(v) for k, v in detail.proposal.items()},
                "trades": [{k: _jsonable(v) for k, v in r.items()} for r in _records(detail.trades)],
                "reviews": [{k: _jsonable(v) for k, v in r.items()} for r in _records(detail.reviews)],
                "export": {k: _jsonable(v) for k, v in detail.export.items()} if detail.export else None}

    @app.post("/api/proposals/{proposal_id:path}/decision", dependencies=[CAN_DECIDE])
    def api_decide(request: Request, user: GetUserDep, proposal_id: str, body: Decision):
        _check_csrf(request, user, request.headers.get("x-csrf-token"))
        state = _decide(store, user, proposal_id, body, channel="api")
        return {k: _jsonable(v) for k, v in state.items()}

    @app.post("/api/decisions", dependencies=[CAN_DECIDE])
    def api_decide_many(request: Request, user: GetUserDep, body: BulkDecision):
        _check_csrf(request, user, request.headers.get("x-csrf-token"))
        results = _decide_many(store, user, body, channel="api")
        return {"decided": sum(r["ok"] for r in results), "refused": sum(not r["ok"] for r in results),
                "results": results}

    return app


def _form_decision(model, **fields):
    """A form's fields as a Decision (422 with the reason when they are not one)."""
    try:
        return model(**fields)
    except ValueError as exc:
        raise HTTPException(422, "; ".join(e["msg"] for e in getattr(exc, "errors", lambda: [])()) or str(exc)) \
            from None


def _decide_many(store: _Warehouse, user, body: BulkDecision, channel: str) -> list[dict]:
    """Decide each selected proposal on its own: one refusal does not undo the others."""
    results = []
    for proposal_id in dict.fromkeys(body.proposal_ids):   # a few hundred at most, each its own transaction
        try:
            state = _decide(store, user, proposal_id, body, channel=channel)
            results.append({"proposal_id": proposal_id, "ok": True, "status": state["status"], "detail": None})
        except HTTPException as exc:
            results.append({"proposal_id": proposal_id, "ok": False, "status": None, "detail": exc.detail})
    return results


def _decide(store: _Warehouse, user, proposal_id: str, body: Decision, channel: str) -> dict:
    """Record the decision as the signed-in user; map refusals to HTTP answers."""
    from rebalance_pipeline import warehouse

    try:
        return warehouse.decide(store.engine, proposal_id, body.decision, by=user.get_name(), note=body.note,
                                channel=channel)
    except warehouse.ReviewError as exc:
        message = str(exc)
        raise HTTPException(404 if message.startswith("no proposal") else 409, message) from None
