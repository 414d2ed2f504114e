"""End to end in headless Chromium: sign in to Airflow, open the Rebalance view, approve.

Drives Debian's Chromium (/usr/bin/chromium, installed by .ci/run) with Playwright's
Python client; Playwright never downloads a browser here. Skipped, with the reason, on a
machine without Chromium.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import small_landing, write
from review_server import password

from rebalance_pipeline import steps
from rebalance_pipeline.export import export_approved_orders

pytestmark = [pytest.mark.airflow, pytest.mark.browser]

CHROMIUM = os.environ.get("REBALANCE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]
AS_OF = dt.date(2014, 1, 3)


@pytest.fixture(scope="module")
def chromium():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set REBALANCE_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_an_analyst_signs_in_and_approves_a_proposal_in_the_airflow_ui(review_server, chromium, engine, landing):
    small_landing(landing, AS_OF)
    steps.run_nightly(AS_OF, landing, engine)
    with engine.connect() as conn:
        proposal_id = conn.execute(sa.text("SELECT proposal_id FROM rebalance.proposal WHERE fund_id = 'F1'")).scalar_one()

    context = chromium.new_context(viewport={"width": 1400, "height": 900}, base_url=review_server.base_url)
    page = context.new_page()
    page.set_default_timeout(30_000)

    # Airflow's own sign-in page (simple auth manager), reached from our view.
    page.goto("/rebalance/")
    page.wait_for_url("**/auth/login**")
    page.locator("input[name=username]").fill("ops")
    page.locator("input[name=password]").fill(password("ops"))
    page.locator("button[type=submit]").click()
    page.wait_for_url("**/rebalance/**")
    assert page.locator("h1").inner_text() == f"What needs a person · night of {AS_OF}"
    assert page.locator("#select-all").is_visible()     # our script ran under the page's CSP

    # The view inside the Airflow UI: the "Rebalance" navigation entry shows it in a frame.
    page.goto("/plugin/rebalance")
    frame = page.frame_locator("iframe")
    frame.locator("#queue").wait_for()

    # Fund -> its proposal -> approve with a note.
    page.goto("/rebalance/")
    page.get_by_role("link", name="F1", exact=True).click()
    page.locator("#drift-chart").wait_for()
    page.get_by_role("link", name=proposal_id).first.click()
    page.locator("#note").fill("Approved in the morning review")
    page.locator("#approve").click()
    page.locator("#flash").wait_for()
    assert page.locator("#flash").inner_text() == "Proposal approved."
    assert page.locator("#proposal-status").inner_text() == "approved"
    assert "ops" in page.locator("#audit").inner_text()
    context.close()

    with engine.connect() as conn:
        state = conn.execute(sa.text("SELECT status, reviewed_by, review_note FROM rebalance.proposal "
                                     "WHERE proposal_id = :id"), {"id": proposal_id}).one()
        reviews = conn.execute(sa.text("SELECT decided_by, channel FROM rebalance.proposal_review "
                                       "WHERE proposal_id = :id"), {"id": proposal_id}).all()
    assert tuple(state) == ("approved", "ops", "Approved in the morning review")
    assert reviews == [("ops", "ui")]


def sign_in(chromium, server, user: str):
    """A browser context signed in to Airflow as ``user``, on the queue."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, base_url=server.base_url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto("/rebalance/")
    page.wait_for_url("**/auth/login**")
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(password(user))
    page.locator("button[type=submit]").click()
    page.wait_for_url("**/rebalance/**")
    return context, page


def test_four_eyes_two_people_approve_a_large_proposal_and_a_viewer_only_looks(review_server, chromium, engine,
                                                                               landing, tmp_path):
    """F1 sells 100 EQ and buys 100 BD at 100: gross notional 20,000 USD, above its
    second_approval_notional of 10,000, so ops (User) and admin must both approve it."""
    folder = small_landing(landing, AS_OF)
    funds = pd.read_csv(folder / "funds.csv")
    write(folder, "funds.csv", funds.assign(second_approval_notional=[10_000, None, None]))
    steps.run_nightly(AS_OF, landing, engine)
    with engine.connect() as conn:
        proposal_id = conn.execute(sa.text("SELECT proposal_id FROM rebalance.proposal WHERE fund_id = 'F1'")).scalar_one()

    first, page = sign_in(chromium, review_server, "ops")
    assert page.locator("#count-pending_review").inner_text() == "1"
    stale = first.new_page()                                   # a second tab, opened before the approval
    stale.goto(f"/rebalance/proposals/{proposal_id}")
    page.goto(f"/rebalance/proposals/{proposal_id}")
    assert page.locator("#gross-notional").inner_text() == "20,000.00"
    page.locator("#note").fill("first look")
    page.locator("#approve").click()
    page.locator("#flash").wait_for()
    assert page.locator("#flash").inner_text().startswith("First approval recorded")
    assert page.locator("#proposal-status").inner_text() == "pending_second_approval"
    assert page.locator("#four-eyes").is_visible() and page.locator("#approve").count() == 0
    stale.locator("#approve").click()                          # A tries to approve again from the older tab
    stale.locator("#error").wait_for()
    assert "needs a second approval by someone other than ops" in stale.locator("#error").inner_text()
    first.close()

    # A viewer sees the queue, the proposal waiting for its second approval in it, and no way to decide.
    look, page = sign_in(chromium, review_server, "viewer")
    page.locator("#queue").wait_for()
    assert proposal_id in page.locator("#queue").inner_text()
    assert "view only" in page.locator("header").inner_text()
    assert page.locator("input[name=proposal_id]").count() == 0 and page.locator("#approve-filter").count() == 0
    page.goto(f"/rebalance/proposals/{proposal_id}")
    assert page.locator("#approve").count() == 0 and page.locator("#reject").count() == 0
    refused = page.request.post(f"/rebalance/proposals/{proposal_id}/decision", form={"decision": "rejected"})
    assert refused.status == 403
    look.close()

    second, page = sign_in(chromium, review_server, "admin")
    page.goto("/rebalance/?status=pending_second_approval")
    assert page.locator("#queue tbody tr").count() == 1 and "1st: ops" in page.locator("#queue").inner_text()
    page.get_by_role("link", name=proposal_id).click()
    page.locator("#approve").click()
    page.locator("#flash").wait_for()
    assert page.locator("#flash").inner_text() == "Proposal approved."
    assert page.locator("#proposal-status").inner_text() == "approved"
    assert [line.split("\t")[:2] for line in page.locator("#audit tbody").inner_text().splitlines()] == [
        ["first_approval", "ops"], ["approved", "admin"]]
    second.close()

    report = export_approved_orders(engine, tmp_path / "outbox")
    assert report.proposals == 1 and len(report.files) == 1
    assert [line.split(",")[:4] for line in report.files[0].read_text().splitlines()[1:]] == [
        ["F1", "EQ", "SELL", "100"], ["F1", "BD", "BUY", "100"]]

    with engine.connect() as conn:
        audit = conn.execute(sa.text("SELECT decision, decided_by, channel FROM rebalance.proposal_review "
                                     "WHERE proposal_id = :id ORDER BY review_id"), {"id": proposal_id}).all()
    assert [tuple(r) for r in audit] == [("first_approval", "ops", "ui"), ("approved", "admin", "ui")]
