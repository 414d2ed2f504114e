"""Every fund of a night (``/funds``), one fund (``/funds/<id>``), and ``/api/funds``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from rebalance_pipeline.review import queries
from rebalance_pipeline.review.charts import drift_chart, tracking_chart
from rebalance_pipeline.review.web import (
    CAN_VIEW,
    MayDecide,
    Store,
    json_records,
    parse_date,
    records,
    render,
)

router = APIRouter()
PAGE_SIZE = 200


@router.get("/funds", response_class=HTMLResponse, dependencies=[CAN_VIEW], name="funds_page")
def funds_page(request: Request, user: GetUserDep, may_decide: MayDecide, store: Store, date: str | None = None,
               status: str | None = None, proposal_status: str | None = None, q: str | None = None,
               model: str | None = None, sort: str = "max_abs_drift", order: str = "desc",
               page: Annotated[int, Query(ge=1, le=100_000)] = 1):
    dates = queries.business_dates(store.engine)
    as_of = parse_date(date, dates[0] if dates else None)
    context = {"dates": dates, "as_of": as_of, "status": status or "", "proposal_status": proposal_status or "",
               "q": q or "", "model": model or "", "sort": sort, "order": order, "rows": [], "total": 0, "counts": {},
               "statuses": queries.FUND_STATUSES, "proposal_statuses": queries.PROPOSAL_STATUSES,
               "sort_keys": list(queries.SORT_KEYS), "page_no": page, "page_size": PAGE_SIZE}
    if as_of is not None:
        try:
            flt = queries.FundFilter(as_of=as_of, status=status or None, proposal_status=proposal_status or None,
                                     search=q or None, model=model or None, sort=sort, descending=order != "asc",
                                     offset=(page - 1) * PAGE_SIZE)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        result = queries.list_funds(store.engine, flt)
        context.update(rows=records(result.rows), total=result.total, counts=result.counts)

    def link(**changes) -> str:
        params = {"date": as_of.isoformat() if as_of else None, "status": status, "proposal_status": proposal_status,
                  "q": q, "model": model, "sort": sort, "order": order, **changes}
        return f"{request.url_for('funds_page').path}?{urlencode({k: v for k, v in params.items() if v})}"

    def sort_link(key: str) -> str:
        return link(sort=key, order="asc" if (sort == key and order != "asc") else "desc", page=None)

    context.update(link=link, sort_link=sort_link)
    return render(request, user, may_decide, "funds.html", context)


@router.get("/funds/{fund_id:path}", response_class=HTMLResponse, dependencies=[CAN_VIEW], name="fund_page")
def fund_page(request: Request, user: GetUserDep, may_decide: MayDecide, store: Store, fund_id: str,
              date: str | None = None):
    dates = queries.business_dates(store.engine)
    as_of = parse_date(date, dates[0] if dates else None)
    summary = queries.fund_night(store.engine, as_of, fund_id) if as_of else None
    if summary is None:
        raise HTTPException(404, f"no results for fund {fund_id} on {as_of}")
    drift = queries.fund_drift(store.engine, as_of, fund_id)
    tracking = queries.fund_tracking(store.engine, fund_id, as_of)
    tonight = tracking[tracking["as_of_date"] == as_of] if len(tracking) else tracking
    return render(request, user, may_decide, "fund.html", {
        "as_of": as_of, "fund": summary, "chart": drift_chart(drift), "holdings": records(drift),
        "classes": records(queries.fund_class_drift(store.engine, as_of, fund_id)),
        "baskets": records(queries.fund_baskets(store.engine, as_of, fund_id)),
        "tracking": records(tonight)[0] if len(tonight) else None,
        "tracking_chart": tracking_chart(tracking) if len(tracking) else None,
        "proposals": records(queries.fund_proposals(store.engine, fund_id))})


@router.get("/api/funds", dependencies=[CAN_VIEW])
def api_funds(store: Store, date: str | None = None, status: str | None = None, proposal_status: str | None = None,
              q: str | None = None, sort: str = "max_abs_drift", order: str = "desc",
              limit: Annotated[int, Query(ge=1, le=5000)] = 200,
              offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0):
    dates = queries.business_dates(store.engine, limit=1)
    as_of = parse_date(date, dates[0] if dates else None)
    if as_of is None:
        return {"as_of_date": None, "total": 0, "funds": []}
    try:
        flt = queries.FundFilter(as_of=as_of, status=status, proposal_status=proposal_status, search=q,
                                 sort=sort, descending=order != "asc", limit=limit, offset=offset)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    result = queries.list_funds(store.engine, flt)
    return {"as_of_date": as_of.isoformat(), "total": result.total, "counts": result.counts,
            "funds": json_records(result.rows)}
