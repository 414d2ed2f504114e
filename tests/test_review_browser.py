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

import pytest
import sqlalchemy as sa
from conftest import small_landing
from review_server import password

from rebalance_pipeline import steps

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
    assert page.locator("h1").inner_text() == f"Funds on {AS_OF}"
    assert page.locator("#select-all").is_visible()     # our script ran under the page's CSP

    # The view inside the Airflow UI: the "Rebalance" navigation entry shows it in a frame.
    page.goto("/plugin/rebalance")
    frame = page.frame_locator("iframe")
    frame.locator("#funds").wait_for()

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
