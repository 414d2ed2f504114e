"""The review view through a real Airflow api-server: pages, permissions, CSRF, decisions.

Users and tokens are Airflow's (simple auth manager, see review_server.py). A browser is
signed in by the ``_token`` cookie, as after logging in to the Airflow UI; API clients send
``Authorization: Bearer``.
"""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
import sqlalchemy as sa
from conftest import build_once, copy_of, small_landing

from rebalance_pipeline import steps

pytestmark = pytest.mark.airflow

FIRST, SECOND = dt.date(2014, 1, 2), dt.date(2014, 1, 3)


@pytest.fixture(scope="module")
def built_night(warehouses, tmp_path_factory):
    """Two nights of the three hand-sized funds: F1 drifts both days, so the first
    night's proposal is superseded by the second's. Run once for the module."""
    def build(engine, landing):
        small_landing(landing, FIRST)
        small_landing(landing, SECOND, with_reference=False)
        steps.run_nightly(FIRST, landing, engine)
        steps.run_nightly(SECOND, landing, engine)
        with engine.connect() as conn:
            return dict(conn.execute(sa.text("SELECT as_of_date, proposal_id FROM rebalance.proposal "
                                             "WHERE fund_id = 'F1'")).all())

    yield from build_once(warehouses, tmp_path_factory, build)


@pytest.fixture
def night(built_night, warehouses, database_url, monkeypatch, landing):
    """A copy of the two nights in the database the review server reads."""
    engine = copy_of(built_night, warehouses, database_url, monkeypatch, landing)
    return {"engine": engine, "pending": built_night.result[SECOND], "superseded": built_night.result[FIRST]}


def browser(server, user: str | None) -> httpx.Client:
    """A client that, like a browser, carries the Airflow session cookie."""
    cookies = {"_token": server.token(user)} if user else {}
    return httpx.Client(base_url=server.base_url, cookies=cookies, follow_redirects=False, timeout=30)


def api(server, user: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.token(user)}"},
                        timeout=30)


def csrf_token_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no decision form"
    return found.group(1)


def audit(engine, proposal_id: str) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT decision, decided_by, channel, note FROM rebalance.proposal_review "
                                    "WHERE proposal_id = :id"), {"id": proposal_id}).all()


def proposal_state(engine, proposal_id: str):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT status, reviewed_by, review_note FROM rebalance.proposal "
                                    "WHERE proposal_id = :id"), {"id": proposal_id}).one()


def test_signed_out_users_are_sent_to_the_airflow_login(review_server, night):
    with browser(review_server, None) as client:
        page = client.get("/rebalance/")
        assert page.status_code == 303
        assert page.headers["location"] == "/api/v2/auth/login?next=%2Frebalance%2F"   # relative: no Host echo
        assert client.get("/rebalance/api/funds").status_code == 401
        assert client.post(f"/rebalance/proposals/{night['pending']}/decision",
                           data={"decision": "approved"}).status_code in (303, 401)
    assert audit(night["engine"], night["pending"]) == []


def test_the_funds_page_lists_the_day_sorted_and_filtered(review_server, night):
    with browser(review_server, "viewer") as client:
        queue = client.get("/rebalance/")
        assert queue.status_code == 200 and "What needs a person" in queue.text and night["pending"] in queue.text
        page = client.get("/rebalance/funds")
        assert page.status_code == 200
        assert "Funds on 2014-01-03" in page.text
        assert all(f in page.text for f in ("F1", "F2", "F3"))
        assert "Content-Security-Policy" in page.headers and "frame-ancestors 'self'" in page.headers[
            "Content-Security-Policy"]
        proposed = client.get("/rebalance/api/funds", params={"status": "proposed"}).json()
        assert [f["fund_id"] for f in proposed["funds"]] == ["F1"]
        assert proposed["funds"][0]["proposal_id"] == night["pending"]
        by_name = client.get("/rebalance/api/funds", params={"sort": "fund_id", "order": "desc"}).json()
        assert [f["fund_id"] for f in by_name["funds"]] == ["F3", "F2", "F1"]
        by_drift = client.get("/rebalance/api/funds").json()["funds"]
        assert by_drift[0]["fund_id"] == "F1" and float(by_drift[0]["max_abs_drift"]) == pytest.approx(0.10)
        earlier = client.get("/rebalance/api/funds", params={"date": FIRST.isoformat(), "q": "f1"}).json()
        assert earlier["as_of_date"] == "2014-01-02" and [f["fund_id"] for f in earlier["funds"]] == ["F1"]
        assert client.get("/rebalance/api/funds", params={"sort": "nav; DROP TABLE x"}).status_code == 422
        assert client.get("/rebalance/funds", params={"date": "yesterday"}).status_code == 422


def test_the_fund_page_draws_its_drift_and_the_proposal_page_its_trades(review_server, night):
    with browser(review_server, "viewer") as client:
        fund = client.get("/rebalance/funds/F1", params={"date": SECOND.isoformat()})
        assert fund.status_code == 200
        assert '<svg id="drift-chart"' in fund.text and fund.text.count('class="bar-breached"') == 2
        assert "70.00% / 60.00%" in fund.text           # EQ: current vs target
        assert client.get("/rebalance/funds/NOPE").status_code == 404
        detail = client.get(f"/rebalance/api/proposals/{night['pending']}").json()
        trades = {t["security_id"]: t for t in detail["trades"]}
        assert trades["EQ"]["side"] == "SELL" and float(trades["EQ"]["quantity"]) == 100
        assert float(trades["EQ"]["weight_before"]) == pytest.approx(0.7)
        assert float(trades["EQ"]["weight_after"]) == pytest.approx(0.6)
        page = client.get(f"/rebalance/proposals/{night['pending']}")
        assert page.status_code == 200 and "band_breach" in page.text
        assert 'name="csrf_token"' not in page.text and "view only" in page.text
        assert client.get("/rebalance/proposals/NOPE").status_code == 404


def test_a_viewer_may_look_but_not_decide(review_server, night):
    with browser(review_server, "viewer") as client:
        form = client.post(f"/rebalance/proposals/{night['pending']}/decision", data={"decision": "approved"})
        assert form.status_code == 403 and "may look at proposals but not decide them" in form.text
    with api(review_server, "viewer") as client:
        refused = client.post(f"/rebalance/api/proposals/{night['pending']}/decision", json={"decision": "approved"})
        assert refused.status_code == 403
    assert audit(night["engine"], night["pending"]) == []
    assert proposal_state(night["engine"], night["pending"]).status == "pending_review"


def test_a_form_without_a_valid_csrf_token_is_refused(review_server, night):
    url = f"/rebalance/proposals/{night['pending']}/decision"
    with browser(review_server, "admin") as other:
        foreign_token = csrf_token_of(other.get(f"/rebalance/proposals/{night['pending']}").text)
    with browser(review_server, "ops") as client:
        good_token = csrf_token_of(client.get(f"/rebalance/proposals/{night['pending']}").text)
        assert client.post(url, data={"decision": "approved"}).status_code == 403
        assert client.post(url, data={"decision": "approved", "csrf_token": "forged"}).status_code == 403
        assert client.post(url, data={"decision": "approved", "csrf_token": foreign_token}).status_code == 403
        cross_site = client.post(url, data={"decision": "approved", "csrf_token": good_token},
                                 headers={"Sec-Fetch-Site": "cross-site"})
        assert cross_site.status_code == 403
        # A blank bearer header leaves the cookie in charge, so the token is still required.
        assert client.post(url, data={"decision": "approved"},
                           headers={"Authorization": "Bearer \u00a0".encode("latin-1")}).status_code == 403
        assert client.post(url, data={"decision": "maybe", "csrf_token": good_token}).status_code == 422
        # The JSON API with the session cookie needs the token too (in a header).
        assert client.post(f"/rebalance/api/proposals/{night['pending']}/decision",
                           json={"decision": "approved"}).status_code == 403
    assert audit(night["engine"], night["pending"]) == []


def test_an_approval_is_recorded_once_under_the_signed_in_user(review_server, night):
    url = f"/rebalance/proposals/{night['pending']}/decision"
    with browser(review_server, "ops") as client:
        token = csrf_token_of(client.get(f"/rebalance/proposals/{night['pending']}").text)
        # A typed reviewer name is ignored: the reviewer is whoever is signed in.
        done = client.post(url, data={"decision": "approved", "csrf_token": token, "note": "<b>ok</b> per IC",
                                      "by": "someone-else", "decided_by": "someone-else"},
                           headers={"Origin": review_server.base_url})   # the browser's own origin is fine
        assert done.status_code == 303 and done.headers["location"].endswith("?done=approved")
        again = client.post(url, data={"decision": "rejected", "csrf_token": token})
        assert again.status_code == 409 and "already approved by ops" in again.text
        page = client.get(f"/rebalance/proposals/{night['pending']}?done=approved")
        assert "Proposal approved." in page.text and "&lt;b&gt;ok&lt;/b&gt; per IC" in page.text
        assert "<b>ok</b>" not in page.text
    assert audit(night["engine"], night["pending"]) == [("approved", "ops", "ui", "<b>ok</b> per IC")]
    assert proposal_state(night["engine"], night["pending"]) == ("approved", "ops", "<b>ok</b> per IC")


def test_the_api_decides_with_a_bearer_token_and_refuses_superseded_or_unknown(review_server, night):
    with api(review_server, "ops") as client:
        superseded = client.post(f"/rebalance/api/proposals/{night['superseded']}/decision",
                                 json={"decision": "approved"})
        assert superseded.status_code == 409 and "superseded" in superseded.json()["detail"]
        assert client.post("/rebalance/api/proposals/NOPE/decision", json={"decision": "approved"}).status_code == 404
        assert client.post(f"/rebalance/api/proposals/{night['pending']}/decision",
                           json={"decision": "maybe"}).status_code == 422
        rejected = client.post(f"/rebalance/api/proposals/{night['pending']}/decision",
                               json={"decision": "rejected", "note": "wait for the flow"})
        assert rejected.status_code == 200
        assert rejected.json()["status"] == "rejected" and rejected.json()["reviewed_by"] == "ops"
        assert client.post(f"/rebalance/api/proposals/{night['pending']}/decision",
                           json={"decision": "approved"}).status_code == 409
    assert proposal_state(night["engine"], night["superseded"]).status == "superseded"
    assert audit(night["engine"], night["superseded"]) == []
    assert audit(night["engine"], night["pending"]) == [("rejected", "ops", "api", "wait for the flow")]


def test_every_value_is_rendered_escaped(review_server, night):
    hostile = '<script>alert("x")</script>'
    with night["engine"].begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO rebalance.fund_summary (as_of_date, fund_id, name, status, blocked_reason, run_id) "
            "VALUES (:d, :f, :n, 'blocked', :r, 'test')"),
            {"d": SECOND, "f": hostile, "n": '<img src=x onerror="alert(1)">', "r": '"><svg onload=alert(1)>'})
    with browser(review_server, "viewer") as client:
        page = client.get("/rebalance/funds", params={"status": "blocked"}).text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
        assert hostile not in page and "<img src=x" not in page and "<svg onload" not in page
        queue = client.get("/rebalance/").text                     # the queue lists the blocked fund too
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in queue and hostile not in queue
        fund = client.get(f"/rebalance/funds/{hostile}", params={"date": SECOND.isoformat()})
        assert fund.status_code == 200 and hostile not in fund.text


def test_the_plugin_adds_the_view_to_the_airflow_ui(review_server):
    with api(review_server, "admin") as client:
        plugins = client.get("/api/v2/plugins").json()["plugins"]
    ours = next(p for p in plugins if p["name"] == "rebalance_review")
    assert ours["fastapi_apps"][0]["url_prefix"] == "/rebalance"
    assert [(v["name"], v["href"], v["url_route"]) for v in ours["external_views"]] == [
        ("Rebalance", "/rebalance/", "rebalance")]


def test_a_bulk_decision_decides_each_selected_proposal_once(review_server, night):
    chosen = [night["pending"], night["superseded"], "NOPE"]
    with browser(review_server, "ops") as client:
        funds = client.get("/rebalance/").text
        assert f'name="proposal_id" value="{night["pending"]}"' in funds
        token = csrf_token_of(funds)
        assert client.post("/rebalance/decisions", data={"decision": "approved", "proposal_id": chosen}
                           ).status_code == 403                           # no CSRF token
        done = client.post("/rebalance/decisions", data={"decision": "approved", "proposal_id": chosen,
                                                         "note": "morning batch", "csrf_token": token})
        assert done.status_code == 303 and done.headers["location"].startswith("/rebalance/decisions?")
        result = client.get(done.headers["location"])         # Post/Redirect/Get: a reload decides nothing
        assert result.status_code == 200 and "1 of 3 proposals approved by ops" in result.text
        assert "superseded" in result.text and "no such proposal" in result.text
        assert client.get(done.headers["location"]).status_code == 200
    with browser(review_server, "viewer") as client:
        assert 'name="proposal_id"' not in client.get("/rebalance/").text
        assert 'name="proposal_id"' not in client.get("/rebalance/funds").text
    with api(review_server, "ops") as client:
        again = client.post("/rebalance/api/decisions", json={"decision": "rejected", "proposal_ids": chosen}).json()
        assert again["decided"] == 0 and again["refused"] == 3
        assert "already approved by ops" in again["results"][0]["detail"]
    assert audit(night["engine"], night["pending"]) == [("approved", "ops", "ui", "morning batch")]
    assert audit(night["engine"], night["superseded"]) == []


def test_the_proposal_page_says_what_superseded_it_and_an_earlier_rejection_of_the_same_trades(review_server, night):
    engine = night["engine"]
    with browser(review_server, "viewer") as client:
        old = client.get(f"/rebalance/proposals/{night['superseded']}").text
        assert f"newer proposal {night['pending']} of 2014-01-03" in old
        with engine.begin() as conn:   # suppose the first night's proposal had been rejected instead
            conn.execute(sa.text("UPDATE rebalance.proposal SET status = 'rejected', reviewed_by = 'ops.bob', "
                                 "reviewed_at = '2014-01-02 20:00-05', review_note = 'not before the flows' "
                                 "WHERE proposal_id = :id"), {"id": night["superseded"]})
        page = client.get(f"/rebalance/proposals/{night['pending']}").text
        assert 'id="rejected-before"' in page
        assert "rejected on 2014-01-02 by ops.bob: not before the flows" in page
        assert "55.00%–65.00%" in page                      # EQ's band that night
        assert re.search(r'<td class="num">100</td>', page)   # whole shares
