"""The "Rebalance" review view: a FastAPI app the Airflow api-server mounts at ``/rebalance``.

The routes live in routers (``routes/``): the exception queue (``/``: what needs a person
today, bulk decisions by selection and by filter), the funds table (``/funds``), a fund, a
proposal and its decision, the results of a bulk decision, and the validation Data Docs of a
night. Security, the warehouse and the templates they share are in ``web.py``.

HTML pages render with Jinja2 autoescaping; forms that change state carry a CSRF token
(``csrf.py``). The JSON API under ``/api`` serves the same data; called with a bearer token
it needs no CSRF token (a browser never attaches one on its own).

Every response carries the security headers, errors included; a request whose path or query
holds a NUL character is refused (400) before any route sees it (PostgreSQL cannot store
one in text, and no id or filter contains one).
"""

from __future__ import annotations

from urllib.parse import unquote, unquote_plus, urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from rebalance_pipeline.review import web
from rebalance_pipeline.review.routes import datadocs, decisions, funds, proposals, queue

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                "form-action 'self'; frame-ancestors 'self'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
REVIEW_JS = """
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("select-all");
  if (!all) return;
  const boxes = () => document.querySelectorAll("input[name=proposal_id]");
  all.hidden = false;
  all.addEventListener("change", () => boxes().forEach((box) => { box.checked = all.checked; }));
});
"""


def _has_nul(request: Request) -> bool:
    raw_path = request.scope.get("raw_path") or b""
    query = request.scope.get("query_string") or b""
    return ("\x00" in request.url.path or b"\x00" in raw_path or "\x00" in unquote(raw_path.decode("latin-1"))
            or "\x00" in unquote_plus(query.decode("latin-1")))


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(f"{request.scope.get('root_path', '')}/api")


def create_app() -> FastAPI:
    app = FastAPI(title="Rebalance review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = web.Warehouse()

    @app.middleware("http")
    async def guard_and_headers(request: Request, call_next):
        if _has_nul(request):
            response = (JSONResponse({"detail": "a NUL character is not allowed in a URL"}, status_code=400)
                        if _is_api(request) else
                        PlainTextResponse("400: a NUL character is not allowed in a URL", status_code=400))
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if _is_api(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        if exc.status_code == 401:
            # Not signed in: Airflow's login page brings the user back here afterwards.
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{web.airflow_path()}/api/v2/auth/login?{urlencode({'next': here})}",
                                    status_code=303)
        detail = exc.detail
        if exc.status_code == 403 and detail == "Forbidden":
            detail = (f"Your Airflow role may look at proposals but not decide them: deciding needs edit "
                      f"permission on the {web.REVIEW_DAG_ID} DAG (role User or above).")
        # Links by path only: never from the Host header the request came with.
        return web.TEMPLATES.TemplateResponse(request, "error.html", {
            "status": exc.status_code, "detail": detail, "url_for": web.path_for(request)},
            status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        detail = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return await http_error(request, StarletteHTTPException(422, detail[:1000] or "invalid request"))

    @app.get("/review.js", name="review_js", include_in_schema=False)
    def review_js():
        # Progressive enhancement only ("select all" on the tables); every page works without it.
        return Response(REVIEW_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})

    for module in (queue, funds, proposals, decisions, datadocs):
        app.include_router(module.router)
    return app
