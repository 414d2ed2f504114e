"""What every route of the review view shares: security dependencies, the warehouse, templates.

Who may do what is Airflow's decision: the signed-in user comes from Airflow's own security
dependency (``GetUserDep``) and is checked with ``requires_access_dag`` against the nightly
DAG (``CAN_VIEW``: GET on the DAG, Viewer and up; ``CAN_DECIDE``: PUT, User/Op/Admin). Tests
override these dependencies (``app.dependency_overrides``) to run without an api-server.

A state change made with the browser's cookie must prove it comes from our own page
(``check_same_origin``): a CSRF token bound to the user and to the session (the Airflow
JWT cookie it was issued for, so it dies with a logout), and no cross-site ``Sec-Fetch-Site``
or foreign ``Origin``. A bearer-token caller sent its credential itself and needs neither.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import pandas as pd
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.configuration import conf
from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.security.utils import get_authorization_scheme_param
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, field_validator

from rebalance_core.schema import PROPOSAL_STATUSES
from rebalance_pipeline import formatting
from rebalance_pipeline.fund_states import STATE_BADGES, STATE_LABELS
from rebalance_pipeline.review import csrf

# The permission to review is the permission on the DAG that makes the proposals.
REVIEW_DAG_ID = "rebalance_nightly"
CAN_VIEW = Depends(requires_access_dag("GET", param_dag_id=REVIEW_DAG_ID))
CAN_DECIDE = Depends(requires_access_dag("PUT", param_dag_id=REVIEW_DAG_ID))
SESSION_COOKIE = "_token"   # Airflow's JWT cookie (COOKIE_NAME_JWT_TOKEN)
MAX_BULK = 1000             # proposals one bulk decision by selection may carry
MAX_BULK_FILTER = 5000      # proposals one bulk decision by filter may decide

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


class Decision(BaseModel):
    decision: str = Field(pattern="^(approved|rejected)$")
    note: str | None = Field(default=None, max_length=2000)

    @field_validator("note")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("a note cannot contain a NUL character")
        return value


class BulkDecision(Decision):
    proposal_ids: list[Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")]] = Field(
        min_length=1, max_length=MAX_BULK)


class FilterDecision(BaseModel):
    """A bulk decision by filter: the confirmation's signed selection, and a note."""

    selection: str = Field(max_length=1_000_000)
    note: str | None = Field(default=None, max_length=2000)

    _no_nul = field_validator("note")(Decision._no_nul.__func__)


class Warehouse:
    """The engine, created on first use (the api-server may start before the warehouse)."""

    @cached_property
    def engine(self):
        from rebalance_pipeline import warehouse

        engine = warehouse.get_engine()
        warehouse.migrate(engine)
        return engine


def store(request: Request) -> Warehouse:
    return request.app.state.store


Store = Annotated[Warehouse, Depends(store)]


def secret_key() -> str:
    return conf.get("api", "secret_key")


def base_url() -> str:
    """``[api] base_url`` without its trailing slash ('' when not configured)."""
    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


def airflow_path() -> str:
    """The path Airflow is served under ('' at the root), from ``[api] base_url``."""
    return urlsplit(base_url()).path.rstrip("/")


def user_may_decide(user: GetUserDep) -> bool:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().is_authorized_dag(method="PUT", details=DagDetails(id=REVIEW_DAG_ID), user=user)


MayDecide = Annotated[bool, Depends(user_may_decide)]


def session_id(request: Request) -> str:
    """The browser session a CSRF token belongs to: a digest of Airflow's JWT cookie (a new
    sign-in gets a new one; a logout revokes the old)."""
    return hashlib.sha256((request.cookies.get(SESSION_COOKIE) or "").encode()).hexdigest()[:32]


def uses_bearer_token(request: Request) -> bool:
    """Whether Airflow authenticates this request by its Authorization header, not the cookie.

    Same parsing as the HTTPBearer scheme behind Airflow's ``get_user``: a header it would
    ignore (``Bearer`` with blank credentials) means the cookie decides, and so CSRF applies.
    """
    scheme, credentials = get_authorization_scheme_param(request.headers.get("authorization"))
    return scheme.lower() == "bearer" and bool(credentials)


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def check_same_origin(request: Request, user, token: str | None) -> None:
    """Refuse a state change a browser may have been tricked into sending (403)."""
    if uses_bearer_token(request):
        return   # the caller sent the credential itself: not an ambient cookie
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        raise HTTPException(403, "cross-site request refused")
    origin = request.headers.get("origin")
    if origin is not None:
        allowed = {_origin_of(base_url()), _origin_of(f"{request.url.scheme}://{request.headers.get('host', '')}")}
        if _origin_of(origin) is None or _origin_of(origin) not in allowed - {None}:
            raise HTTPException(403, f"request from another origin ({origin[:100]}) refused")
    try:
        csrf.verify(secret_key(), str(user.get_id()), token, session=session_id(request))
    except csrf.CsrfError as exc:
        raise HTTPException(403, str(exc)) from None


def parse_date(value: str | None, fallback: dt.date | None) -> dt.date | None:
    if not value:
        return fallback
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"date must be YYYY-MM-DD, got {value[:40]!r}") from None


def parse_number(name: str, value: str | None, scale: float = 1.0) -> float | None:
    """An optional non-negative number from a query parameter (422 when it is not one)."""
    if value is None or not value.strip():
        return None
    try:
        number = float(value.replace(",", "").strip())
    except ValueError:
        raise HTTPException(422, f"{name} must be a number, got {value[:40]!r}") from None
    if not math.isfinite(number) or number < 0:
        raise HTTPException(422, f"{name} must be a number of at least 0")
    return number * scale


# ------------------------------------------------------------------ rendering
is_blank = formatting.is_blank   # one definition (rebalance_pipeline.formatting)
records = formatting.records


# One formatting policy with the CLI and the HTML report (rebalance_pipeline.formatting).
TEMPLATES.env.filters.update(formatting.jinja_filters(blank="–"))
TEMPLATES.env.tests["blank"] = is_blank
TEMPLATES.env.globals.update(state_badges=STATE_BADGES, state_labels=STATE_LABELS,
                             status_labels={s: formatting.status_label(s) for s in PROPOSAL_STATUSES})


def path_for(request: Request):
    """``url_for`` for templates, giving paths: a link never carries the Host header the
    request came with (behind a proxy too), as the CSP's form-action 'self' expects."""
    def url_for(name: str, /, **params) -> str:
        return request.url_for(name, **params).path
    return url_for


def render(request: Request, user, may_decide: bool, template: str, context: dict,
           status_code: int = 200) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, template, {
        **context, "user_name": user.get_name(), "may_decide": may_decide, "url_for": path_for(request),
        "csrf_token": csrf.issue(secret_key(), str(user.get_id()), session=session_id(request)) if may_decide else None,
    }, status_code=status_code)


def jsonable(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if is_blank(value):
        return None
    return value


def json_records(frame: pd.DataFrame) -> list[dict]:
    return [{k: jsonable(v) for k, v in row.items()} for row in records(frame)]


def form_model(model, **fields):
    """A form's fields as a model (422 with the reason when they are not one)."""
    try:
        return model(**fields)
    except ValueError as exc:
        errors = getattr(exc, "errors", list)()
        raise HTTPException(422, "; ".join(e["msg"] for e in errors) or str(exc)) from None


def decide(engine, user, proposal_id: str, body: Decision, channel: str) -> dict:
    """Record the decision as the signed-in user (``warehouse.decide``, the CLI's too); map
    refusals to HTTP answers: 404 unknown, 409 anything else (four eyes included)."""
    from rebalance_pipeline import warehouse

    try:
        return warehouse.decide(engine, proposal_id, body.decision, by=user.get_name(), note=body.note,
                                channel=channel)
    except warehouse.ProposalNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except warehouse.ReviewError as exc:
        raise HTTPException(409, str(exc)) from None


def decide_many(engine, user, ids: list[str], decision: str, note: str | None, channel: str) -> list[dict]:
    """Each proposal decided on its own (``warehouse.decide_many``): one refusal undoes nothing."""
    from rebalance_pipeline import warehouse

    results = warehouse.decide_many(engine, ids, decision, by=user.get_name(), note=note, channel=channel)
    return [{k: v for k, v in r.items() if k != "state"} for r in results]
