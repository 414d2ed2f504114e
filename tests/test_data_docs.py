"""The night's validation results as Great Expectations Data Docs: built from the results the
night published, named failures on the index, nothing fetched from the network."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest
from conftest import small_landing, write
from typer.testing import CliRunner

from rebalance_pipeline import data_docs, reporting, steps
from rebalance_pipeline.cli import app
from rebalance_pipeline.warehouse import read_frame

AS_OF = dt.date(2014, 1, 3)
# What a page would fetch: scripts, stylesheets, images, frames from anywhere but the site.
EXTERNAL = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.IGNORECASE)


def night_with_a_blocked_fund(landing, engine, shards: int = 1):
    """small_landing with BD's price -5: F1 and F2 hold BD and are blocked (close_price_positive)."""
    folder = small_landing(landing, AS_OF)
    prices = pd.read_csv(folder / "prices.csv")
    prices.loc[prices["security_id"] == "BD", "close_price"] = -5.0
    write(folder, "prices.csv", prices)
    return steps.run_nightly(AS_OF, landing, engine, shards=shards)


def test_a_night_with_a_blocked_fund_produces_the_site(engine, landing, tmp_path):
    report = night_with_a_blocked_fund(landing, engine, shards=2)
    assert report.blocked == 2
    stored = read_frame(engine.connect(), "SELECT part, suite FROM rebalance.validation_gx_result "
                                          "WHERE as_of_date = :d ORDER BY part, suite", {"d": AS_OF})
    assert {"night", "shard-0", "shard-1"} == set(stored["part"])
    assert ("night", "rebalance_prices") in set(zip(stored["part"], stored["suite"], strict=True))

    index = data_docs.build_data_docs(engine, AS_OF, tmp_path / "reports")
    assert index == tmp_path / "reports" / "data-docs" / "2014-01-03" / "index.html" and index.is_file()
    html = index.read_text(encoding="utf-8")
    # The index names the failed expectation, its column, our check and what it blocked.
    failed = html[html.index("rebalance-failed-expectations"):]
    assert "expect_column_values_to_be_between" in failed and "close_price" in failed
    assert "close_price_positive" in failed and "BD price -5.0 is not positive" in failed
    # ... and links to its validation page, which GX rendered from the night's result.
    [page] = re.findall(r'href="(validations/rebalance_prices/[^"]+night\.html)"', failed)[:1]
    page_html = (index.parent / page.replace("%20", " ")).read_text(encoding="utf-8")
    assert "close_price" in page_html and "-5.0" in page_html
    # Nothing on any page would be fetched from the network.
    for path in index.parent.rglob("*.html"):
        assert not EXTERNAL.search(path.read_text(encoding="utf-8")), path
    # The validation results tab is plain HTML rows (GX fills it by script from a CDN).
    assert "rebalance_positions" in html and "ge-offline-table" in html


def test_a_rebuild_replaces_the_site_whole_and_the_html_report_links_it(engine, landing, tmp_path):
    night_with_a_blocked_fund(landing, engine)
    reports = tmp_path / "reports"
    first = data_docs.build_data_docs(engine, AS_OF, reports)
    (first.parent / "stale.html").write_text("from an older build")
    again = data_docs.build_data_docs(engine, AS_OF, reports)
    assert again == first and not (first.parent / "stale.html").exists()
    assert [p.name for p in (reports / "data-docs").iterdir()] == ["2014-01-03"]   # nothing left behind

    page = reporting.build_drift_report(engine, AS_OF, reports).read_text(encoding="utf-8")
    blocked = page[page.index("<h2>Blocked funds</h2>"):page.index("<h2>Failed validation checks</h2>")]
    assert blocked.count('href="data-docs/2014-01-03/index.html"') == 2     # F1 and F2


def test_the_html_report_has_no_dead_link_without_the_site(engine, landing, tmp_path):
    night_with_a_blocked_fund(landing, engine)
    page = reporting.build_drift_report(engine, AS_OF, tmp_path).read_text(encoding="utf-8")
    assert "data-docs/" not in page


def test_cli_run_builds_the_night_s_data_docs_and_the_command_rebuilds_them(engine, landing, tmp_path, monkeypatch):
    monkeypatch.setenv("REBALANCE_REPORTS_DIR", str(tmp_path / "reports"))
    folder = small_landing(landing, AS_OF)
    prices = pd.read_csv(folder / "prices.csv")
    prices.loc[prices["security_id"] == "BD", "close_price"] = -5.0
    write(folder, "prices.csv", prices)
    result = CliRunner().invoke(app, ["run", "--date", AS_OF.isoformat(), "--landing", str(landing), "--quiet"])
    assert result.exit_code == 0, result.output
    index = tmp_path / "reports" / "data-docs" / "2014-01-03" / "index.html"
    assert index.is_file()
    out = tmp_path / "elsewhere"
    result = CliRunner().invoke(app, ["data-docs", "--date", AS_OF.isoformat(), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "data-docs" / "2014-01-03" / "index.html").is_file()


def test_a_night_without_stored_results_says_so(engine, tmp_path):
    with pytest.raises(LookupError, match="nothing published"):
        data_docs.build_data_docs(engine, AS_OF, tmp_path)
