"""Refresh the docs' screenshots (docs/screenshots/) from a running `make ui` (demo data) in headless Chromium.

    make ui                      # in one terminal
    .venv/bin/python docs/screenshots.py [--report .rebalance/reports/drift_report_2014-01-06.html]

Signs in as ``ops`` with the password `make ui` wrote to .rebalance/ui-passwords.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
        "--disable-background-networking", "--disable-component-update"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--passwords", type=Path, default=HERE.parent / ".rebalance" / "ui-passwords.json")
    parser.add_argument("--report", type=Path, help="a drift report HTML file to capture too")
    parser.add_argument("--out", type=Path, default=HERE / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    password = json.loads(args.passwords.read_text())["ops"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 860}, base_url=args.url).new_page()
        page.goto("/rebalance/")
        page.wait_for_url("**/auth/login**")
        page.locator("input[name=username]").fill("ops")
        page.locator("input[name=password]").fill(password)
        page.locator("button[type=submit]").click()
        page.wait_for_url("**/rebalance/**")
        page.goto("/plugin/rebalance")
        page.frame_locator("iframe").locator("#queue").wait_for()
        page.wait_for_timeout(500)
        page.screenshot(path=str(args.out / "review-in-airflow.png"))
        page.goto("/rebalance/funds?status=proposed")
        first_fund = page.locator("#funds tbody tr td a").first
        first_fund.click()
        page.locator("#drift-chart").wait_for()
        page.screenshot(path=str(args.out / "review-fund.png"), full_page=True)
        page.locator("a[href*='/proposals/']").first.click()
        page.locator("#trades").wait_for()
        page.screenshot(path=str(args.out / "review-proposal.png"), full_page=True)
        if args.report:
            page.goto(args.report.resolve().as_uri())
            page.wait_for_timeout(500)
            page.screenshot(path=str(args.out / "drift-report.png"), full_page=True)
        browser.close()
    print(f"screenshots in {args.out}")


if __name__ == "__main__":
    main()
