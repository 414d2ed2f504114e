"""The review app under FastAPI's TestClient, with Airflow's security dependencies overridden.

No api-server: ``get_user`` (behind ``GetUserDep``) reads the user from the ``_token``
cookie (``<user>.<session>``, as a browser signed in to Airflow carries its JWT) or from
``Authorization: Bearer <user>``; ``CAN_VIEW``/``CAN_DECIDE`` (``requires_access_dag``) and
``user_may_decide`` answer by the user's role: ``viewer`` may look, everyone else may decide.
The app is mounted at ``/rebalance`` as the Airflow plugin mounts it.
"""

from __future__ import annotations

import re

from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow.api_fastapi.core_api.security import get_user
from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from rebalance_pipeline.review import web
from rebalance_pipeline.review.app import create_app

VIEWERS = {"viewer"}


def _user(request: Request) -> SimpleAuthManagerUser:
    scheme, _, credentials = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        name = credentials.strip()
    else:
        cookie = request.cookies.get(web.SESSION_COOKIE)
        if not cookie:
            raise HTTPException(401, "Not authenticated")
        name = cookie.split(".", 1)[0]
    return SimpleAuthManagerUser(username=name, role="viewer" if name in VIEWERS else "user")


def _can_view(request: Request) -> None:
    _user(request)


def _can_decide(request: Request) -> None:
    if _user(request).get_name() in VIEWERS:
        raise HTTPException(403, "Forbidden")


def _may_decide(request: Request) -> bool:
    return _user(request).get_name() not in VIEWERS


def review_app() -> FastAPI:
    app = create_app()
    app.dependency_overrides.update({get_user: _user, web.CAN_VIEW.dependency: _can_view,
                                     web.CAN_DECIDE.dependency: _can_decide, web.user_may_decide: _may_decide})
    parent = FastAPI()
    parent.mount("/rebalance", app)
    return parent


def browser(app: FastAPI, user: str | None, session: str = "1") -> TestClient:
    """A client carrying the session cookie of ``user`` (None: signed out)."""
    client = TestClient(app, follow_redirects=False)
    if user:
        client.cookies.set(web.SESSION_COOKIE, f"{user}.{session}")
    return client


def api(app: FastAPI, user: str) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {user}"}, follow_redirects=False)


def csrf_token_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no decision form"
    return found.group(1)


def selection_of(html: str) -> str:
    found = re.search(r'name="selection" value="([^"]+)"', html)
    assert found, "the page has no confirmation form"
    return found.group(1)
