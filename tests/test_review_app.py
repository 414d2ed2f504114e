"""The review view through FastAPI's TestClient (Airflow's security dependencies overridden,
see review_testclient.py): the exception queue, its filters, bulk decisions by filter and
their race with a new night, four eyes through the API and the CLI, and the hardening probes.

The book (hand-sized; prices 100, NAV = quantities x 100, targets 60/40 EQ/BD):

| fund | EQ  | BD  | drift | trades                 | gross notional | turnover | notes                  |
|------|-----|-----|-------|------------------------|----------------|----------|------------------------|
| A    | 800 | 200 | 20 pp | sell 200 EQ, buy 200 BD| 40,000         | 20 %     |                        |
| B    | 700 | 300 | 10 pp | sell 100, buy 100      | 20,000         | 10 %     | policy hybrid (daily)  |
| C    | 680 | 320 |  8 pp | sell 80, buy 80        | 16,000         |  8 %     | model M1 (60/40)       |
| D    | 600 | 400 |  0    | none                   |                |          | in band                |
| E    | 600 | 400 |       |                        |                |          | holds NOPX: no price, blocked |
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa
from conftest import build_once, copy_of, write
from review_testclient import api, browser, csrf_token_of, review_app, selection_of
from typer.testing import CliRunner

from rebalance_pipeline import steps
from rebalance_pipeline.cli import EXIT_REFUSED
from rebalance_pipeline.cli import app as cli_app
from rebalance_pipeline.export import export_approved_orders

AS_OF = dt.date(2014, 1, 3)
FUNDS = {  # fund: (EQ, BD, policy, model, second_approval_notional)
    "A": (800, 200, "threshold", None, None),
    "B": (700, 300, "hybrid", None, None),
    "C": (680, 320, "threshold", "M1", None),
    "D": (600, 400, "threshold", None, None),
    "E": (600, 400, "threshold", None, None),
}


def book_landing(root, as_of=AS_OF, funds=FUNDS, extra_positions=(("E", "NOPX", 10),)):
    folder = root / as_of.isoformat()
    d = as_of.isoformat()
    write(folder, "prices.csv", [{"as_of_date": d, "security_id": s, "close_price": 100.0, "currency": "USD"}
                                 for s in ("EQ", "BD")])
    positions = [{"as_of_date": d, "fund_id": f, "security_id": s, "quantity": q}
                 for f, (eq, bd, *_) in funds.items() for s, q in (("EQ", eq), ("BD", bd))]
    positions += [{"as_of_date": d, "fund_id": f, "security_id": s, "quantity": q} for f, s, q in extra_positions]
    write(folder, "positions.csv", positions)
    write(folder, "cash.csv", [{"as_of_date": d, "fund_id": f, "currency": "USD", "amount": 0.0} for f in funds])
    write(folder, "funds.csv", [
        {"fund_id": f, "name": f"Fund {f}", "base_currency": "USD", "policy": policy, "frequency": "daily",
         "abs_band": 0.05, "rel_band": None, "rebalance_to": "target", "min_trade_notional": 0, "cash_buffer": 0,
         "allow_fractional": "false", "model_id": model, "second_approval_notional": threshold}
        for f, (_, _, policy, model, threshold) in funds.items()])
    write(folder, "targets.csv", [{"fund_id": f, "security_id": s, "target_weight": w}
                                  for f, (_, _, _, model, _) in funds.items() if model is None
                                  for s, w in (("EQ", 0.6), ("BD", 0.4))])
    write(folder, "model_targets.csv", [{"model_id": "M1", "security_id": "EQ", "target_weight": 0.6},
                                        {"model_id": "M1", "security_id": "BD", "target_weight": 0.4}])
    return folder


@pytest.fixture(scope="module")
def built_book(warehouses, tmp_path_factory):
    """The book's night, run once for the module; each test decides on a copy of it."""
    def build(engine, landing):
        book_landing(landing)
        steps.run_nightly(AS_OF, landing, engine)

    yield from build_once(warehouses, tmp_path_factory, build)


@pytest.fixture
def book(built_book, warehouses, database_url, monkeypatch, landing):
    engine = copy_of(built_book, warehouses, database_url, monkeypatch, landing)
    return {"engine": engine, "ids": proposals(engine)}


def proposals(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT fund_id, proposal_id FROM rebalance.proposal "
                                         "WHERE status IN ('pending_review', 'pending_second_approval')")).all())


def state(engine, proposal_id: str):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT status, reviewed_by, first_approved_by FROM rebalance.proposal "
                                    "WHERE proposal_id = :id"), {"id": proposal_id}).one()


def audit(engine, proposal_id: str) -> list:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT decision, decided_by, channel FROM rebalance.proposal_review WHERE proposal_id = :id "
            "ORDER BY review_id"), {"id": proposal_id}).all()]


@pytest.fixture
def app():
    return review_app()


# ---------------------------------------------------------------------- the queue
def test_the_queue_opens_on_what_needs_a_person_largest_drift_first(book, app):
    with browser(app, "viewer") as client:
        page = client.get("/rebalance/")
        assert page.status_code == 200 and "What needs a person" in page.text
        items = client.get("/rebalance/api/queue").json()
    assert [(i["kind"], i["fund_id"]) for i in items["items"]] == [
        ("proposal", "A"), ("proposal", "B"), ("proposal", "C"), ("blocked", "E")]   # D is in band: not here
    assert [float(i["max_abs_drift"]) for i in items["items"][:3]] == pytest.approx([0.20, 0.10, 0.08])
    # 40,000 + 20,000 + 16,000 sold and bought (sum of the trades' notional, USD)
    assert [Decimal(i["gross_notional"]) for i in items["items"][:3]] == [40_000, 20_000, 16_000]
    assert "NOPX" in items["items"][3]["blocked_reason"]
    assert items["counts"] == {"pending_review": 3, "pending_second_approval": 0, "blocked": 1, "compliance": 0,
                               "auto_approved": 0, "approved_by_people": 0}
    assert items["total"] == 4
    assert 'id="queue-total"' in page.text and "76,000.00 USD" in page.text
    assert 'name="proposal_id"' not in page.text and "approve-filter" not in page.text   # a viewer decides nothing


def test_the_queue_is_paginated(book, app):
    with browser(app, "viewer") as client:
        first = client.get("/rebalance/api/queue", params={"limit": 2}).json()
        second = client.get("/rebalance/api/queue", params={"limit": 2, "offset": 2}).json()
    assert [i["fund_id"] for i in first["items"]] == ["A", "B"] and first["total"] == 4
    assert [i["fund_id"] for i in second["items"]] == ["C", "E"]


@pytest.mark.parametrize(("params", "funds"), [
    ({"model": "M1"}, ["C"]),
    ({"policy": "hybrid"}, ["B"]),
    ({"status": "blocked"}, ["E"]),
    ({"status": "pending_review"}, ["A", "B", "C"]),
    ({"gross_min": "18000"}, ["A", "B"]),                       # 40,000 and 20,000; a size leaves blocked funds out
    ({"gross_min": "16000", "gross_max": "20000"}, ["B", "C"]),  # bounds included
    ({"turnover_max": "0.09"}, ["C"]),                          # the API takes fractions: 8 % <= 9 %
    ({"turnover_min": "0.1", "turnover_max": "0.2"}, ["A", "B"]),
    ({"currency": "eur"}, []),
])
def test_the_queue_filters(book, app, params, funds):
    with browser(app, "viewer") as client:
        found = client.get("/rebalance/api/queue", params=params)
    assert found.status_code == 200, found.text
    assert [i["fund_id"] for i in found.json()["items"]] == funds


def test_the_funds_table_filters_by_model_and_the_fund_page_shows_class_drift(book, app):
    with browser(app, "viewer") as client:
        page = client.get("/rebalance/funds", params={"model": "M1"})
        assert page.status_code == 200
        listed = re.findall(r'href="/rebalance/funds/([A-Z]+)\?date=', page.text)
        assert listed == ["C"] and "1 fund" in page.text
        fund = client.get("/rebalance/funds/A", params={"date": AS_OF.isoformat()})
    # Every fund's drift per asset class beside its holdings (here each security is its own class).
    table = fund.text[fund.text.index('id="class-drift"'):]
    assert "<td>EQ</td><td class=\"num\">80.00%</td><td class=\"num\">60.00%</td>" in table


def test_the_page_takes_turnover_in_percent_and_refuses_nonsense(book, app):
    with browser(app, "viewer") as client:
        page = client.get("/rebalance/", params={"turnover_max": "9"})
        assert page.status_code == 200 and ">C<" in page.text and ">A<" not in page.text
        assert client.get("/rebalance/", params={"policy": "yolo"}).status_code == 422
        assert client.get("/rebalance/", params={"gross_min": "lots"}).status_code == 422
        assert client.get("/rebalance/api/queue", params={"gross_min": "5", "gross_max": "1"}).status_code == 422
        assert client.get("/rebalance/api/queue", params={"status": "approved"}).status_code == 422


# ---------------------------------------------------------------------- bulk by filter
def test_the_confirmation_counts_what_a_bulk_decision_by_filter_decides(book, app):
    engine, ids = book["engine"], book["ids"]
    with browser(app, "ops") as client:
        confirm = client.get("/rebalance/queue/confirm", params={"decision": "approved", "gross_min": "18000"})
        assert confirm.status_code == 200
        assert "Approve 2 proposals?" in confirm.text and "60,000.00 USD" in confirm.text   # A 40,000 + B 20,000
        done = client.post("/rebalance/queue/decide", data={"selection": selection_of(confirm.text), "note": "batch",
                                                            "csrf_token": csrf_token_of(confirm.text)})
        assert done.status_code == 200 and "2 of 2 proposals approved by ops" in done.text
    assert state(engine, ids["A"]).status == state(engine, ids["B"]).status == "approved"
    assert state(engine, ids["C"]).status == "pending_review"
    assert audit(engine, ids["A"]) == [("approved", "ops", "ui")]
    with api(app, "ops") as client:
        counted = client.get("/rebalance/api/queue/confirm", params={"decision": "rejected"}).json()
        assert counted["count"] == 1 and counted["gross"] == [{"currency": "USD", "gross_notional": "16000.000000"}]
        rejected = client.post("/rebalance/api/queue/decide", json={"selection": counted["selection"]}).json()
        assert (rejected["counted"], rejected["decided"], rejected["refused"]) == (1, 1, 0)
    assert state(engine, ids["C"]).status == "rejected"


def test_bulk_by_filter_decides_only_what_was_counted_when_a_night_publishes_in_between(book, app, landing):
    engine, ids = book["engine"], book["ids"]
    with browser(app, "ops") as client:
        confirm = client.get("/rebalance/queue/confirm", params={"decision": "approved"})
        assert "Approve 3 proposals?" in confirm.text
        # Meanwhile the night is published again with a new fund G drifting: a fourth proposal
        # that matches the filter. A, B and C found the same trades again (same ids, kept).
        book_landing(landing, funds={**FUNDS, "G": (900, 100, "threshold", None, None)})
        steps.run_nightly(AS_OF, landing, engine)
        fresh = proposals(engine)
        assert set(fresh) == {"A", "B", "C", "G"} and all(fresh[f] == ids[f] for f in "ABC")
        again = client.get("/rebalance/queue/confirm", params={"decision": "approved"})
        assert "Approve 4 proposals?" in again.text        # counting now would include G
        done = client.post("/rebalance/queue/decide", data={"selection": selection_of(confirm.text),
                                                            "csrf_token": csrf_token_of(confirm.text)})
        assert "3 of 3 proposals approved by ops" in done.text
    assert [state(engine, ids[f]).status for f in "ABC"] == ["approved"] * 3
    assert state(engine, fresh["G"]).status == "pending_review"       # not counted, not decided
    assert audit(engine, fresh["G"]) == []


def test_a_confirmation_is_bound_to_its_user_and_cannot_be_forged(book, app):
    with browser(app, "ops") as ops:
        selection = selection_of(ops.get("/rebalance/queue/confirm", params={"decision": "approved"}).text)
    with browser(app, "alice") as alice:
        token = csrf_token_of(alice.get("/rebalance/").text)
        stolen = alice.post("/rebalance/queue/decide", data={"selection": selection, "csrf_token": token})
        assert stolen.status_code == 403 and "another user" in stolen.text
        forged = alice.post("/rebalance/queue/decide", data={"selection": selection[:-4] + "AAAA", "csrf_token": token})
        assert forged.status_code == 403
    with browser(app, "viewer") as viewer:
        assert viewer.get("/rebalance/queue/confirm", params={"decision": "approved"}).status_code == 403
    assert all(state(book["engine"], p).status == "pending_review" for p in book["ids"].values())


def test_bulk_by_selection_from_the_queue(book, app):
    engine, ids = book["engine"], book["ids"]
    with browser(app, "ops") as client:
        page = client.get("/rebalance/").text
        done = client.post("/rebalance/decisions", data={"decision": "rejected", "proposal_id": [ids["B"], "NOPE"],
                                                         "csrf_token": csrf_token_of(page)})
        assert done.status_code == 303
        result = client.get(done.headers["location"])
        assert "1 of 2 proposals rejected by ops" in result.text and "no such proposal" in result.text
    assert state(engine, ids["B"]) == ("rejected", "ops", None)


# ---------------------------------------------------------------------- four eyes
@pytest.fixture(scope="module")
def built_four_eyes(warehouses, tmp_path_factory):
    """B needs two approvals (gross 20,000 > 15,000); A's threshold equals its gross (not above)."""
    def build(engine, landing):
        funds = {**FUNDS, "A": (800, 200, "threshold", None, 40_000), "B": (700, 300, "hybrid", None, 15_000)}
        book_landing(landing, funds=funds)
        steps.run_nightly(AS_OF, landing, engine)

    yield from build_once(warehouses, tmp_path_factory, build)


@pytest.fixture
def four_eyes(built_four_eyes, warehouses, database_url, monkeypatch, landing):
    engine = copy_of(built_four_eyes, warehouses, database_url, monkeypatch, landing)
    return {"engine": engine, "ids": proposals(engine)}


def test_four_eyes_through_the_api_then_the_export(four_eyes, app, tmp_path):
    engine, b = four_eyes["engine"], four_eyes["ids"]["B"]
    with api(app, "alice") as alice:
        first = alice.post(f"/rebalance/api/proposals/{b}/decision", json={"decision": "approved", "note": "ok"})
        assert first.status_code == 200 and first.json()["status"] == "pending_second_approval"
        assert first.json()["first_approved_by"] == "alice" and first.json()["reviewed_by"] is None
        twice = alice.post(f"/rebalance/api/proposals/{b}/decision", json={"decision": "approved"})
        assert twice.status_code == 409
        assert "needs a second approval by someone other than alice" in twice.json()["detail"]
        queue = alice.get("/rebalance/api/queue", params={"status": "pending_second_approval"}).json()
        assert [(i["fund_id"], i["first_approved_by"]) for i in queue["items"]] == [("B", "alice")]
    assert export_approved_orders(engine, tmp_path / "outbox").proposals == 0   # not approved yet: nothing goes
    with api(app, "ALICE") as same_person:                                       # names compare without case
        assert same_person.post(f"/rebalance/api/proposals/{b}/decision",
                                json={"decision": "approved"}).status_code == 409
    with api(app, "bob") as bob:
        second = bob.post(f"/rebalance/api/proposals/{b}/decision", json={"decision": "approved"})
        assert second.status_code == 200 and second.json()["status"] == "approved"
        assert second.json()["reviewed_by"] == "bob" and second.json()["first_approved_by"] == "alice"
    assert audit(engine, b) == [("first_approval", "alice", "api"), ("approved", "bob", "api")]
    report = export_approved_orders(engine, tmp_path / "outbox")
    assert report.proposals == 1 and len(report.files) == 1 and b in report.files[0].name
    orders = report.files[0].read_text().splitlines()
    assert len(orders) == 3 and orders[1].startswith("B,EQ,SELL,100,") and orders[2].startswith("B,BD,BUY,100,")
    with engine.connect() as conn:
        history = conn.execute(sa.text("SELECT decision, decided_by, first_approved_by FROM rebalance.proposal_history "
                                       "WHERE proposal_id = :id"), {"id": b}).one()
    assert tuple(history) == ("approved", "bob", "alice")


def test_a_threshold_equal_to_the_gross_needs_one_approval(four_eyes, app):
    a = four_eyes["ids"]["A"]
    with api(app, "alice") as alice:
        assert alice.post(f"/rebalance/api/proposals/{a}/decision", json={"decision": "approved"}).json()[
            "status"] == "approved"                                   # 40,000 is not above 40,000


def test_a_rejection_at_the_second_stage_ends_it_even_by_the_first_approver(four_eyes, app):
    engine, b = four_eyes["engine"], four_eyes["ids"]["B"]
    with api(app, "alice") as alice:
        alice.post(f"/rebalance/api/proposals/{b}/decision", json={"decision": "approved"})
        withdrawn = alice.post(f"/rebalance/api/proposals/{b}/decision", json={"decision": "rejected", "note": "no"})
        assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "rejected"
    with api(app, "bob") as bob:
        late = bob.post(f"/rebalance/api/proposals/{b}/decision", json={"decision": "approved"})
        assert late.status_code == 409 and "already rejected by alice" in late.json()["detail"]
    assert audit(engine, b) == [("first_approval", "alice", "api"), ("rejected", "alice", "api")]


def test_the_cli_refuses_the_first_approver_too(four_eyes):
    engine, b = four_eyes["engine"], four_eyes["ids"]["B"]
    runner = CliRunner()
    first = runner.invoke(cli_app, ["approve", b, "--by", "alice"], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert first.exit_code == 0 and "first approval by alice" in first.output and "20,000.00 USD" in first.output
    again = runner.invoke(cli_app, ["approve", b, "--by", "Alice "], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert again.exit_code == EXIT_REFUSED and "someone other than alice" in again.output
    second = runner.invoke(cli_app, ["approve", b, "--by", "bob"], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert second.exit_code == 0 and "approved by bob" in second.output
    assert state(engine, b) == ("approved", "bob", "alice")


def test_a_rerun_keeps_a_first_approval_and_a_newer_night_supersedes_it(four_eyes, app, landing):
    engine, b = four_eyes["engine"], four_eyes["ids"]["B"]
    with api(app, "alice") as alice:
        alice.post(f"/rebalance/api/proposals/{b}/decision", json={"decision": "approved"})
    funds = {**FUNDS, "A": (800, 200, "threshold", None, 40_000), "B": (700, 300, "hybrid", None, 15_000)}
    steps.run_nightly(AS_OF, landing, engine)                                    # a rerun of the date
    assert state(engine, b) == ("pending_second_approval", None, "alice")
    with engine.connect() as conn:
        trades = conn.execute(sa.text("SELECT count(*) FROM rebalance.proposal_trade WHERE proposal_id = :id"),
                              {"id": b}).scalar_one()
    assert trades == 2
    nxt = dt.date(2014, 1, 6)
    book_landing(landing, as_of=nxt, funds=funds)
    steps.run_nightly(nxt, landing, engine)
    assert state(engine, b) == ("superseded", None, "alice")                      # sized on old positions
    assert audit(engine, b) == [("first_approval", "alice", "api")]


# ---------------------------------------------------------------------- hardening probes
SECURITY_HEADER = "Content-Security-Policy"


@pytest.mark.parametrize("url", [
    "/rebalance/?model=a%00b", "/rebalance/funds?q=%00", "/rebalance/api/funds?q=x%00", "/rebalance/api/queue?currency=%00",
    "/rebalance/decisions?id=a%00", "/rebalance/proposals/x%00y", "/rebalance/funds/F%00", "/rebalance/api/proposals/%00",
])
def test_a_nul_byte_in_a_query_or_a_path_is_a_400_with_the_usual_headers(book, app, url):
    with browser(app, "viewer") as client:
        answer = client.get(url)
    assert answer.status_code == 400 and SECURITY_HEADER in answer.headers
    assert answer.headers["Cache-Control"] == "no-store"


def test_a_nul_byte_in_a_note_is_a_422_and_decides_nothing(book, app):
    a = book["ids"]["A"]
    with api(app, "ops") as client:
        one = client.post(f"/rebalance/api/proposals/{a}/decision", json={"decision": "approved", "note": "a\x00b"})
        many = client.post("/rebalance/api/decisions", json={"decision": "approved", "note": "\x00",
                                                             "proposal_ids": [a]})
        ids = client.post("/rebalance/api/decisions", json={"decision": "approved", "proposal_ids": ["x\x00"]})
    assert (one.status_code, many.status_code, ids.status_code) == (422, 422, 422)
    assert SECURITY_HEADER in one.headers
    with browser(app, "ops") as client:
        token = csrf_token_of(client.get(f"/rebalance/proposals/{a}").text)
        form = client.post(f"/rebalance/proposals/{a}/decision", data={"decision": "approved", "note": "x\x00",
                                                                        "csrf_token": token})
        assert form.status_code == 422 and SECURITY_HEADER in form.headers
    assert state(book["engine"], a).status == "pending_review" and audit(book["engine"], a) == []


def test_a_foreign_origin_without_sec_fetch_site_is_refused(book, app):
    a = book["ids"]["A"]
    with browser(app, "ops") as client:
        token = csrf_token_of(client.get(f"/rebalance/proposals/{a}").text)
        foreign = client.post(f"/rebalance/proposals/{a}/decision", data={"decision": "approved", "csrf_token": token},
                              headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403 and "another origin" in foreign.text
        opaque = client.post(f"/rebalance/proposals/{a}/decision", data={"decision": "approved", "csrf_token": token},
                             headers={"Origin": "null"})
        assert opaque.status_code == 403
        assert state(book["engine"], a).status == "pending_review"
        own = client.post(f"/rebalance/proposals/{a}/decision", data={"decision": "approved", "csrf_token": token},
                          headers={"Origin": "http://testserver"})
        assert own.status_code == 303
    assert state(book["engine"], a).status == "approved"


def test_the_pages_claim_only_decisions_the_warehouse_records(book, app):
    a = book["ids"]["A"]
    with browser(app, "ops") as client:
        page = client.get(f"/rebalance/proposals/{a}", params={"done": "approved"})
        assert page.status_code == 200 and "Proposal approved." not in page.text
        claimed = client.get("/rebalance/decisions", params={"decision": "approved", "decided": "42", "id": [a]})
        assert "0 of 1 proposal approved by ops" in claimed.text and "42" not in claimed.text
        token = csrf_token_of(page.text)
        client.post(f"/rebalance/proposals/{a}/decision", data={"decision": "approved", "csrf_token": token})
        assert "Proposal approved." in client.get(f"/rebalance/proposals/{a}", params={"done": "approved"}).text
        assert "Proposal rejected." not in client.get(f"/rebalance/proposals/{a}", params={"done": "rejected"}).text
    with browser(app, "alice") as other:   # ops's approval is not alice's to be told about as hers
        assert "Proposal approved." not in other.get(f"/rebalance/proposals/{a}", params={"done": "approved"}).text


def test_error_pages_never_link_to_the_host_header(book, app):
    with browser(app, "viewer") as client:
        missing = client.get("/rebalance/proposals/NOPE", headers={"Host": "evil.example"})
    assert missing.status_code == 404 and "evil.example" not in missing.text
    assert 'href="/rebalance/"' in missing.text


def test_a_csrf_token_dies_with_its_session(book, app):
    a = book["ids"]["A"]
    with browser(app, "ops", session="before-logout") as client:
        token = csrf_token_of(client.get(f"/rebalance/proposals/{a}").text)
    with browser(app, "ops", session="after-login") as client:        # signed out and in again: a new JWT cookie
        stale = client.post(f"/rebalance/proposals/{a}/decision", data={"decision": "approved", "csrf_token": token})
        assert stale.status_code == 403 and "earlier sign-in" in stale.text
        fresh = csrf_token_of(client.get(f"/rebalance/proposals/{a}").text)
        assert client.post(f"/rebalance/proposals/{a}/decision",
                           data={"decision": "approved", "csrf_token": fresh}).status_code == 303


def test_signed_out_and_viewers(book, app):
    a = book["ids"]["A"]
    with browser(app, None) as client:
        page = client.get("/rebalance/")
        assert page.status_code == 303 and page.headers["location"].startswith("/api/v2/auth/login?next=")
    with browser(app, "viewer") as client:
        assert client.post(f"/rebalance/proposals/{a}/decision", data={"decision": "approved"}).status_code == 403
    with api(app, "viewer") as client:
        assert client.post(f"/rebalance/api/proposals/{a}/decision", json={"decision": "approved"}).status_code == 403


def test_the_data_docs_link_only_when_the_site_exists(book, app, tmp_path, monkeypatch):
    monkeypatch.setenv("REBALANCE_REPORTS_DIR", str(tmp_path / "reports"))
    with browser(app, "viewer") as client:
        assert "validation results" not in client.get("/rebalance/").text
        site = tmp_path / "reports" / "data-docs" / AS_OF.isoformat()
        site.mkdir(parents=True)
        (site / "index.html").write_text("<html><body>GX Data Docs</body></html>")
        page = client.get("/rebalance/").text
        assert f'href="/rebalance/data-docs/{AS_OF}/index.html"' in page
        docs = client.get(f"/rebalance/data-docs/{AS_OF}/index.html")
        assert docs.status_code == 200 and "GX Data Docs" in docs.text
        assert "script-src" not in docs.headers["Content-Security-Policy"]
        assert client.get(f"/rebalance/data-docs/{AS_OF}/..%2F..%2Fsecret").status_code == 404
        assert client.get("/rebalance/data-docs/not-a-date/index.html").status_code == 404


def test_a_threshold_that_is_not_a_number_or_negative_blocks_the_fund(engine, landing):
    """A typo must not switch four eyes off: the fund is blocked with the reason, the others go on."""
    folder = book_landing(landing)
    funds = (folder / "funds.csv").read_text().splitlines()
    header = funds[0].split(",")
    column = header.index("second_approval_notional")

    def with_threshold(line: str, value: str) -> str:
        cells = line.split(",")
        cells[column] = value
        return ",".join(cells)

    rows = {line.split(",")[0]: line for line in funds[1:]}
    rows["A"] = with_threshold(rows["A"], "1O000")      # a letter O
    rows["B"] = with_threshold(rows["B"], "-5")
    (folder / "funds.csv").write_text("\n".join([funds[0], *rows.values()]) + "\n")
    steps.run_nightly(AS_OF, landing, engine)
    with engine.connect() as conn:
        summary = dict(conn.execute(sa.text("SELECT fund_id, coalesce(blocked_reason, status) FROM "
                                            "rebalance.fund_summary WHERE as_of_date = :d"), {"d": AS_OF}).all())
    assert "second_approval_notional is not a number" in summary["A"]
    assert "second_approval_notional -5.0 is negative" in summary["B"]
    assert summary["C"] == "proposed" and summary["D"] == "in_band"


# ---------------------------------------------------------------------- the operator's word on execution
def test_an_approved_proposal_page_records_the_operators_word_on_its_execution(book, app):
    engine, a, b = book["engine"], book["ids"]["A"], book["ids"]["B"]
    with browser(app, "ops") as client:
        token = csrf_token_of(client.get(f"/rebalance/proposals/{a}").text)
        pending = client.post(f"/rebalance/proposals/{a}/executed", data={"outcome": "filled", "csrf_token": token})
        assert pending.status_code == 409 and "only an approved proposal" in pending.text   # not approved yet
        client.post(f"/rebalance/proposals/{a}/decision", data={"decision": "approved", "csrf_token": token})
        page = client.get(f"/rebalance/proposals/{a}")
        assert 'id="executed"' in page.text and "No execution reported yet" in page.text
        assert client.post(f"/rebalance/proposals/{a}/executed", data={"outcome": "filled"}).status_code == 403
        done = client.post(f"/rebalance/proposals/{a}/executed",
                           data={"outcome": "filled", "note": "desk phoned", "csrf_token": token})
        assert done.status_code == 303
        after = client.get(done.headers["location"])
        assert "Its orders are recorded as executed" in after.text and "desk phoned" in after.text
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source, status, recorded_by, as_of_date FROM rebalance.execution "
                                    "WHERE proposal_id = :id"), {"id": a}).all()
    assert {tuple(r) for r in rows} == {("operator", "filled", "ops", AS_OF)}
    with browser(app, "viewer") as viewer:   # a viewer sees the page, not the buttons, and cannot post
        page = viewer.get(f"/rebalance/proposals/{a}")
        assert 'id="executed"' not in page.text
        token = csrf_token_of(viewer.get(f"/rebalance/proposals/{b}").text) if "csrf_token" in page.text else None
        assert viewer.post(f"/rebalance/proposals/{a}/executed",
                           data={"outcome": "filled", "csrf_token": token or ""}).status_code == 403
