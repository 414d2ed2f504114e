"""Reporting: the V005 views and roles, and the HTML drift report, on a real PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import build_once, copy_of, record_export, small_landing, write, write_executions
from typer.testing import CliRunner

from rebalance_pipeline import reporting, steps, warehouse
from rebalance_pipeline.cli import app
from rebalance_pipeline.warehouse import read_frame

FIRST = dt.date(2014, 1, 3)
SECOND = dt.date(2014, 1, 6)
VIEWS = ["fund_drift_history", "latest_fund_drift", "proposal_history", "approval_latency", "approval_latency_daily"]
HOSTILE = "<script>alert(1)</script>"
runner = CliRunner()


def q(engine, sql, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn, sql, params)


def pid(engine, fund_id: str, as_of: dt.date) -> str:
    return q(engine, "SELECT proposal_id FROM rebalance.proposal WHERE fund_id = :f AND as_of_date = :d",
             f=fund_id, d=as_of)["proposal_id"].item()


def published_at(engine, proposal_id: str, when: str) -> None:
    """Pretend the proposal was published at ``when`` (the nightly stamps now())."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE rebalance.proposal SET created_at = CAST(:t AS timestamptz) "
                             "WHERE proposal_id = :id"), {"t": when, "id": proposal_id})


def decide_at(engine, proposal_id: str, decision: str, by: str, when: str, note: str | None = None,
              channel: str = "cli") -> None:
    """A decision taken at ``when``, recorded as decide() records it (which stamps now()):
    the proposal's status and one audit row, here with an explicit decided_at."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE rebalance.proposal SET status = :s, reviewed_by = :by, "
                             "reviewed_at = CAST(:t AS timestamptz), review_note = :note "
                             "WHERE proposal_id = :id AND status = 'pending_review'"),
                     {"s": decision, "by": by, "t": when, "note": note, "id": proposal_id})
        conn.execute(sa.text("INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by, decided_at, "
                             "note, channel) VALUES (:id, :s, :by, CAST(:t AS timestamptz), :note, :channel)"),
                     {"id": proposal_id, "s": decision, "by": by, "t": when, "note": note, "channel": channel})


def two_nights(engine, landing) -> dict[str, str]:
    """2014-01-03 (Friday): F1 proposed at 18:30 New York, approved on Monday 2014-01-06 at
    09:30 (63 h later) and exported at 09:35, before Monday's close. 2014-01-06 (equities
    +30 %): F1 and F2 proposed at 18:40, F2 rejected at 23:40 New York (5 h; 04:40 UTC on
    the 7th), F1 pending; F3 in band on both nights."""
    small_landing(landing, FIRST)
    steps.run_nightly(FIRST, landing, engine)
    first = pid(engine, "F1", FIRST)
    published_at(engine, first, "2014-01-03 18:30 America/New_York")
    decide_at(engine, first, "approved", "ops.alice", "2014-01-06 09:30 America/New_York", "ok", channel="cli")
    record_export(engine, first, "2014-01-06 09:35 America/New_York")

    folder = small_landing(landing, SECOND, with_reference=False)
    write_executions(engine, folder, [first])   # the desk executed it on Monday
    write(folder, "prices.csv", [{"as_of_date": SECOND.isoformat(), "security_id": s, "close_price": p,
                                  "currency": "USD"} for s, p in (("EQ", 130.0), ("BD", 100.0), ("GLD", 50.0))])
    steps.run_nightly(SECOND, landing, engine)
    f1, f2 = pid(engine, "F1", SECOND), pid(engine, "F2", SECOND)
    for proposal_id in (f1, f2):
        published_at(engine, proposal_id, "2014-01-06 18:40 America/New_York")
    decide_at(engine, f2, "rejected", "ops.bob", "2014-01-06 23:40 America/New_York", "too costly", channel="ui")
    return {"F1_first": first, "F1_second": f1, "F2_second": f2}


# ------------------------------------------------------------------ views
def test_views_after_two_nights_and_decisions(reported, landing):
    engine, ids = reported
    # A fund last seen on an earlier date (dropped since) keeps its last row, flagged as old.
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO rebalance.fund_summary (as_of_date, fund_id, nav, max_abs_drift, status, run_id) "
            "VALUES ('2014-01-02', 'OLD', 500, 0.01, 'in_band', 'r0')"))

    latest = q(engine, "SELECT * FROM rebalance.latest_fund_drift ORDER BY fund_id").set_index("fund_id")
    summary = q(engine, "SELECT * FROM rebalance.fund_summary WHERE as_of_date = :d", d=SECOND).set_index("fund_id")
    assert list(latest.index) == ["F1", "F2", "F3", "OLD"]
    assert latest["as_of_date"].to_dict() == {"F1": SECOND, "F2": SECOND, "F3": SECOND, "OLD": dt.date(2014, 1, 2)}
    assert latest["on_latest_date"].to_dict() == {"F1": True, "F2": True, "F3": True, "OLD": False}
    for fund in ("F1", "F2", "F3"):
        for column in ("nav", "max_abs_drift", "status", "proposal_id", "run_id"):
            assert latest.at[fund, column] == summary.at[fund, column] or (
                pd.isna(latest.at[fund, column]) and pd.isna(summary.at[fund, column])), (fund, column)
    assert latest.at["F1", "proposal_id"] == ids["F1_second"] and latest.at["F1", "proposal_status"] == "pending_review"
    assert latest.at["F2", "proposal_status"] == "rejected"
    assert latest.at["F3", "status"] == "in_band" and pd.isna(latest.at["F3", "proposal_id"])
    assert summary.at["F1", "nav"] == 130 * 700 + 100 * 300

    # A second audit row for an already decided proposal (which decide() never writes) does
    # not duplicate it: the history carries the first decision, once.
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by, channel) "
                             "VALUES (:id, 'approved', 'ops.mallory', 'api')"), {"id": ids["F2_second"]})
    history = q(engine, "SELECT * FROM rebalance.proposal_history ORDER BY as_of_date, fund_id")
    assert len(history) == history["proposal_id"].nunique() == 3
    h = history.set_index("proposal_id")
    assert h.loc[ids["F1_first"], ["status", "decision", "decided_by", "decision_note", "decision_channel"]].tolist() \
        == ["approved", "approved", "ops.alice", "ok", "cli"]
    assert h.loc[ids["F2_second"], ["status", "decision", "decided_by", "decision_channel"]].tolist() \
        == ["rejected", "rejected", "ops.bob", "ui"]
    assert h.loc[ids["F1_second"], "status"] == "pending_review" and pd.isna(h.loc[ids["F1_second"], "decided_by"])
    assert h["exported"].to_dict() == {ids["F1_first"]: True, ids["F1_second"]: False, ids["F2_second"]: False}
    proposals = q(engine, "SELECT * FROM rebalance.proposal").set_index("proposal_id")
    columns = ["fund_id", "as_of_date", "status", "trigger", "turnover", "est_cost", "est_realized_gain", "created_at"]
    pd.testing.assert_frame_equal(h[columns].sort_index(), proposals[columns].sort_index(), check_names=False)

    latency = q(engine, "SELECT * FROM rebalance.approval_latency ORDER BY as_of_date").set_index("proposal_id")
    audit = q(engine, "SELECT DISTINCT ON (proposal_id) proposal_id, decided_at FROM rebalance.proposal_review "
                      "ORDER BY proposal_id, decided_at, review_id").set_index("proposal_id")
    assert list(latency.index) == [ids["F1_first"], ids["F2_second"]]
    for proposal_id, hours in ((ids["F1_first"], 63), (ids["F2_second"], 5)):
        row = latency.loc[proposal_id]
        assert row["latency"] == audit.at[proposal_id, "decided_at"] - proposals.at[proposal_id, "created_at"]
        assert row["decided_at"] - row["created_at"] == row["latency"]
        assert float(row["latency_hours"]) == pytest.approx(row["latency"].total_seconds() / 3600, abs=1e-4)
        assert float(row["latency_hours"]) == hours
    assert latency["decision"].tolist() == ["approved", "rejected"]
    assert latency["decided_by"].tolist() == ["ops.alice", "ops.bob"]

    daily = q(engine, "SELECT * FROM rebalance.approval_latency_daily ORDER BY as_of_date").set_index("as_of_date")
    assert daily[["decided", "approved", "rejected"]].to_dict("index") == {
        FIRST: {"decided": 1, "approved": 1, "rejected": 0}, SECOND: {"decided": 1, "approved": 0, "rejected": 1}}
    assert daily.at[SECOND, "median_hours"] == pytest.approx(float(latency.at[ids["F2_second"], "latency_hours"]))

    comments = q(engine, "SELECT c.relname, obj_description(c.oid, 'pg_class') AS doc FROM pg_class c "
                         "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'rebalance' "
                         "AND c.relkind = 'v'").set_index("relname")["doc"]
    assert sorted(comments.index) == sorted(VIEWS) and comments.str.len().min() > 50


def test_approval_latency_median_over_several_decisions(engine):
    with engine.begin() as conn:
        for n, hours in enumerate((1, 3, 8)):
            conn.execute(sa.text(
                "INSERT INTO rebalance.proposal (proposal_id, as_of_date, fund_id, nav, turnover, trade_count, run_id,"
                " created_at) VALUES (:id, '2014-01-03', :f, 100, 0.1, 1, 'r', "
                " timestamptz '2014-01-03 23:40:00+00')"), {"id": f"P{n}", "f": f"F{n}"})
            conn.execute(sa.text(
                "INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by, decided_at) VALUES "
                "(:id, 'approved', 'ops', timestamptz '2014-01-03 23:40:00+00' + make_interval(hours => :h))"),
                {"id": f"P{n}", "h": hours})
    daily = q(engine, "SELECT * FROM rebalance.approval_latency_daily").iloc[0]
    assert (daily["decided"], daily["approved"]) == (3, 3)
    assert (daily["median_hours"], daily["p90_hours"], float(daily["max_hours"])) == (3.0, pytest.approx(7.0), 8.0)
    assert float(daily["mean_hours"]) == pytest.approx(4.0)


# ------------------------------------------------------------------ roles
def _denied(conn, sql: str, params: dict | None = None, match: str = "permission denied") -> None:
    with pytest.raises(sa.exc.DBAPIError, match=match), conn.begin_nested():
        conn.execute(sa.text(sql), params or {})


def test_reader_reads_everything_and_writes_nothing(engine, landing):
    small_landing(landing, FIRST)
    steps.run_nightly(FIRST, landing, engine)
    tables = q(engine, "SELECT tablename FROM pg_tables WHERE schemaname = 'rebalance'")["tablename"].tolist()
    with engine.connect() as conn:
        try:
            conn.execute(sa.text("SET ROLE rebalance_reader"))
            assert conn.execute(sa.text("SELECT current_user")).scalar() == "rebalance_reader"
            for relation in VIEWS + tables:
                conn.execute(sa.text(f"SELECT * FROM rebalance.{relation} LIMIT 1")).all()
            assert conn.execute(sa.text("SELECT count(*) FROM rebalance.latest_fund_drift")).scalar() == 3
            _denied(conn, "INSERT INTO rebalance.fund_summary (as_of_date, fund_id, status, run_id) "
                          "VALUES ('2014-01-03', 'X', 'in_band', 'r')")
            _denied(conn, "UPDATE rebalance.proposal SET review_note = 'x'")
            _denied(conn, "DELETE FROM rebalance.price")
            _denied(conn, "INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by) "
                          "SELECT proposal_id, 'approved', 'me' FROM rebalance.proposal")
            _denied(conn, "CREATE TABLE rebalance.mine (x int)")
        finally:
            conn.rollback()  # also undoes SET ROLE before the connection goes back to the pool


def test_writer_writes_tables_but_never_edits_the_audit(engine, landing):
    small_landing(landing, FIRST)
    steps.run_nightly(FIRST, landing, engine)
    with engine.connect() as conn:
        try:
            conn.execute(sa.text("SET ROLE rebalance_writer"))
            conn.execute(sa.text("INSERT INTO rebalance.validation_result (as_of_date, run_id, dataset, \"check\","
                                 " success) VALUES ('2014-01-03', 'r', 'prices', 'by_writer', true)"))  # a sequence
            conn.execute(sa.text("UPDATE rebalance.proposal SET status = 'approved', reviewed_by = 'w', "
                                 "reviewed_at = now()"))
            conn.execute(sa.text("INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by) "
                                 "SELECT proposal_id, 'approved', 'w' FROM rebalance.proposal"))
            conn.execute(sa.text("DELETE FROM rebalance.run_artifact"))
            assert conn.execute(sa.text("SELECT count(*) FROM rebalance.proposal_history WHERE decided_by = 'w'")
                                ).scalar() == 1
            _denied(conn, "UPDATE rebalance.proposal_review SET note = 'edited'")
            _denied(conn, "DELETE FROM rebalance.proposal_review")
            _denied(conn, "TRUNCATE rebalance.proposal_review")
            _denied(conn, "CREATE TABLE rebalance.mine (x int)")
        finally:
            conn.rollback()
    # ... and the trigger still refuses it to anyone who has the privilege (the owner).
    with engine.connect() as conn:
        conn.execute(sa.text("INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by) "
                             "SELECT proposal_id, 'approved', 'w' FROM rebalance.proposal"))
        _denied(conn, "UPDATE rebalance.proposal_review SET note = 'edited'", match="append-only")
        conn.rollback()


def test_tables_and_views_created_later_are_granted_by_default(engine):
    with engine.connect() as conn:
        try:
            conn.execute(sa.text("CREATE TABLE rebalance.later_table (id bigserial PRIMARY KEY, x int)"))
            conn.execute(sa.text("CREATE VIEW rebalance.later_view AS SELECT x FROM rebalance.later_table"))
            conn.execute(sa.text("SET ROLE rebalance_writer"))
            conn.execute(sa.text("INSERT INTO rebalance.later_table (x) VALUES (1)"))
            conn.execute(sa.text("SET ROLE rebalance_reader"))
            assert conn.execute(sa.text("SELECT x FROM rebalance.later_view")).scalar() == 1
            _denied(conn, "INSERT INTO rebalance.later_table (x) VALUES (2)")
        finally:
            conn.rollback()


def test_migrate_twice_and_on_a_second_database_reuses_the_roles(engine, server_url):
    assert warehouse.migrate(engine) == []
    roles = "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN ('rebalance_reader', 'rebalance_writer') " \
            "ORDER BY rolname"
    assert [tuple(r) for r in q(engine, roles).itertuples(index=False)] == [
        ("rebalance_reader", False), ("rebalance_writer", False)]
    name = f"rebalance_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    second = sa.create_engine(sa.engine.make_url(server_url).set(database=name))
    try:
        every = [m.version for m in warehouse.available_migrations()]
        assert warehouse.migrate(second) == every  # the roles exist already: created only if missing
        assert warehouse.migrate(second) == []
        with second.connect() as conn:
            granted = conn.execute(sa.text(
                "SELECT has_table_privilege('rebalance_reader', 'rebalance.proposal_history', 'SELECT'),"
                " has_table_privilege('rebalance_reader', 'rebalance.proposal', 'INSERT'),"
                " has_table_privilege('rebalance_writer', 'rebalance.proposal', 'INSERT'),"
                " has_table_privilege('rebalance_writer', 'rebalance.proposal_review', 'UPDATE'),"
                " has_schema_privilege('rebalance_reader', 'rebalance', 'USAGE')")).one()
        assert tuple(granted) == (True, False, True, False, True)
        assert [tuple(r) for r in q(second, roles).itertuples(index=False)] == [
            ("rebalance_reader", False), ("rebalance_writer", False)]
    finally:
        second.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="module")
def built_two_nights(warehouses, tmp_path_factory):
    """``two_nights`` run once for the module."""
    yield from build_once(warehouses, tmp_path_factory, two_nights)


@pytest.fixture
def reported(built_two_nights, warehouses, database_url, monkeypatch, landing):
    """(engine, the ids of ``two_nights``) on a copy of the two nights: the ``engine`` fixture's contract."""
    return copy_of(built_two_nights, warehouses, database_url, monkeypatch, landing), built_two_nights.result


# ------------------------------------------------------------------ the report
def _hostile_night(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO rebalance.fund_summary (as_of_date, fund_id, name, base_currency, nav, max_abs_drift, status,"
            " blocked_reason, run_id) VALUES (:d, :f, :n, 'USD', 1000, 0.5, 'blocked', :r, 'r-hostile')"),
            {"d": SECOND, "f": HOSTILE, "n": "<b>bold</b> & co", "r": "prices.csv row 9: <img src=x onerror=alert(2)>"})
        conn.execute(sa.text(
            "INSERT INTO rebalance.validation_result (as_of_date, run_id, dataset, \"check\", success, failed_rows,"
            " detail) VALUES (:d, 'r-hostile', 'prices', 'price_positive', false, 1, :detail)"),
            {"d": SECOND, "detail": "<iframe src=//evil.example>"})


def test_drift_report_is_self_contained_with_charts_headline_and_escaping(reported, landing, tmp_path):
    engine, ids = reported
    _hostile_night(engine)
    path = reporting.build_drift_report(engine, SECOND, tmp_path / "reports")
    assert path == tmp_path / "reports" / "drift_report_2014-01-06.html"
    html = path.read_text(encoding="utf-8")

    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert [alt for alt, _ in images] == ["Funds by drift", "Proposals by status", "Turnover and cost trend"]
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for _, data in images)
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "<iframe" not in html and "<img src=x" not in html and "<b>bold" not in html

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html and "&lt;iframe src=//evil.example&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html

    def headline(key: str) -> str:
        return re.search(rf'id="{key}">([^<]*)<', html).group(1)

    assert headline("funds") == "4"
    assert [headline(f"funds-{s}") for s in ("proposed", "waiting", "in_band", "blocked")] == ["2", "0", "1", "1"]
    assert 'id="funds-breached"' not in html    # "breached, no proposal": a card only when it happens
    assert headline("proposals-pending_review") == "1"   # F1's of the night; F2's was rejected already
    # Decisions *taken* on Monday 2014-01-06 in New York: Friday's F1 approved after 63 h, the
    # night's F2 rejected after 5 h at 23:40 (04:40 UTC on the 7th); nothing else waits.
    assert "<h3>Decisions taken on 2014-01-06</h3>" in html and "America/New_York time" in html
    assert [headline(f"day-{k}") for k in ("approved", "rejected", "median-hours", "p90-hours")] \
        == ["1", "1", "34.0", "57.2"]
    assert headline("backlog") == "0"
    # Decisions on the night's own proposals, whenever taken: F2's rejection (F1's still waits).
    assert "<h3>Decisions on the proposals of the night of 2014-01-06</h3>" in html
    assert [headline(f"night-{k}") for k in ("approved", "rejected", "median-hours")] == ["0", "1", "5.0"]
    assert [headline(f"window-{k}") for k in ("approved", "rejected", "median-hours")] == ["1", "1", "34.0"]
    assert "over the last 2 business date(s), 2014-01-03 to 2014-01-06" in html
    nav = 130 * 700 + 100 * 300 + 130 * 500 + 100 * 500 + 50 * 2000 + 1000
    assert f"{nav:,.0f}</div><div class=\"l\">NAV USD" in html
    assert "price_positive" in html and "prices.csv row 9" in html
    # The hostile fund drifts most: first row of the top table.
    top = html.split("<h2>Top drifting funds</h2>", 1)[1]
    assert top.index("&lt;script&gt;") < top.index(">F1<") and top.index(">F1<") < top.index(">F3<")
    # Percentages as in the review view (no space); ids never wrap; a wide page.
    assert re.search(r'<td class="r">\d+\.\d\d%</td>', top) and " %<" not in html
    assert f'<td class="id">{ids["F1_second"]}</td>' in top and "max-width: 1300px" in html
    assert "traded value" in html.lower() and "half of buys plus sells" in html


def test_report_data_trend_counts_each_nights_own_proposals(reported, landing):
    engine, _ = reported
    data = reporting.load_report_data(engine, SECOND, history_days=60)
    trend = data.trend.set_index("as_of_date")
    assert list(trend.index) == [FIRST, SECOND]
    summary = q(engine, "SELECT s.as_of_date, sum(p.turnover * p.nav) AS t, sum(p.est_cost) AS c, count(*) AS n "
                        "FROM rebalance.fund_summary s JOIN rebalance.proposal p USING (proposal_id) "
                        "GROUP BY s.as_of_date").set_index("as_of_date")
    for day in (FIRST, SECOND):
        assert float(trend.at[day, "turnover_value"]) == pytest.approx(float(summary.at[day, "t"]))
        assert float(trend.at[day, "est_cost"]) == pytest.approx(float(summary.at[day, "c"]))
        assert trend.at[day, "proposals"] == summary.at[day, "n"]
    assert trend.at[SECOND, "proposals"] == 2
    assert list(reporting.load_report_data(engine, SECOND, history_days=1).trend["as_of_date"]) == [SECOND]
    assert list(reporting.load_report_data(engine, FIRST).trend["as_of_date"]) == [FIRST]
    with pytest.raises(LookupError, match="nothing published for 2014-01-04"):
        reporting.load_report_data(engine, dt.date(2014, 1, 4))


def test_report_dates_rule(reported, landing, tmp_path):
    engine, _ = reported
    midnight = dt.datetime(2014, 1, 5, tzinfo=dt.UTC)
    rule = reporting.resolve_report_dates
    assert rule(engine, "2014-01-03", [{"as_of_date": "2014-01-06"}], midnight) == [FIRST]
    assert rule(engine, None, [{"as_of_date": "2014-01-06"}], midnight) == [SECOND]
    # Several publish events in one run (a catch-up, a backfill of the nightly, events queued
    # while max_active_runs=1 held the previous run): every night once, sorted, whatever the
    # order; a night published twice (a rerun) once; events with no date are ignored.
    events = [{"as_of_date": "2014-01-06", "run_id": "a"}, {"as_of_date": "2014-01-03", "run_id": "b"}, {}, None,
              {"as_of_date": "2014-01-06", "run_id": "rerun"}]
    dates = rule(engine, None, events, midnight)
    assert dates == [FIRST, SECOND]
    written = [reporting.build_drift_report(engine, day, tmp_path / "r") for day in dates]  # the mapped task, per date
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [p.name for p in written] == [
        "drift_report_2014-01-03.html", "drift_report_2014-01-06.html"]
    assert rule(engine, None, [{}], midnight) == [FIRST]  # latest on or before the 5th
    assert rule(engine, None, [], dt.datetime(2014, 1, 6, tzinfo=dt.UTC)) == [SECOND]
    assert rule(engine, None, [], None, dt.datetime(2014, 2, 1, 15, tzinfo=dt.UTC)) == [SECOND]
    with pytest.raises(LookupError, match="on or before 2014-01-02"):
        rule(engine, None, [], dt.datetime(2014, 1, 2, tzinfo=dt.UTC))


# ------------------------------------------------------------------ decisions and fund states
def _summary(conn, day: str, fund_id: str, **values) -> None:
    row = {"as_of_date": day, "fund_id": fund_id, "nav": 1000, "max_abs_drift": 0.01, "status": "in_band",
           "run_id": "r", **values}
    conn.execute(sa.text(f"INSERT INTO rebalance.fund_summary ({', '.join(row)}) "
                         f"VALUES ({', '.join(':' + k for k in row)})"), row)


def _proposal(conn, proposal_id: str, day: str, fund_id: str, created: str, status: str = "pending_review") -> None:
    reviewed = status in ("approved", "rejected")
    conn.execute(sa.text(
        "INSERT INTO rebalance.proposal (proposal_id, as_of_date, fund_id, status, nav, turnover, trade_count, run_id,"
        " created_at, reviewed_by, reviewed_at) VALUES (:id, :d, :f, :s, 1000, 0.1, 1, 'r',"
        " CAST(:c AS timestamptz), :by, CASE WHEN :reviewed THEN now() END)"),
        {"id": proposal_id, "d": day, "f": fund_id, "s": status, "c": created, "by": "ops" if reviewed else None,
         "reviewed": reviewed})


def _review(conn, proposal_id: str, decision: str, when: str) -> None:
    conn.execute(sa.text("INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by, decided_at) "
                         "VALUES (:id, :s, 'ops', CAST(:t AS timestamptz))"), {"id": proposal_id, "s": decision, "t": when})


def test_decisions_are_counted_on_the_new_york_date_they_were_taken(engine, tmp_path):
    """Reports of 2014-01-03 and 2014-01-06 (business dates 01-02, 01-03, 01-06; a night of
    01-07 exists too): decisions by the date they were taken in New York, whatever the date
    of the proposal, and the backlog as it stood at the end of the report's date."""
    ny = " America/New_York"
    with engine.begin() as conn:
        for fund_id in ("D", "F", "G"):
            _summary(conn, "2014-01-02", fund_id)
        for fund_id in ("A", "B", "C", "E", "G", "H"):
            _summary(conn, "2014-01-03", fund_id)
        for fund_id in ("A", "B", "C"):
            _summary(conn, "2014-01-06", fund_id)
        _summary(conn, "2014-01-07", "H")
        friday = "2014-01-03 18:30" + ny
        _proposal(conn, "P1", "2014-01-03", "A", friday, "approved")
        _review(conn, "P1", "approved", "2014-01-06 09:00" + ny)            # 62.5 h, on the 6th
        _proposal(conn, "P2", "2014-01-03", "B", friday, "rejected")
        _review(conn, "P2", "rejected", "2014-01-06 10:30" + ny)            # 64 h, on the 6th
        _proposal(conn, "P3", "2014-01-03", "C", friday, "approved")
        _review(conn, "P3", "approved", "2014-01-06 23:30" + ny)            # 77 h: 04:30 UTC on the 7th, NY the 6th
        _proposal(conn, "P4", "2014-01-02", "D", "2014-01-02 18:30" + ny, "approved")
        _review(conn, "P4", "approved", "2014-01-03 08:30" + ny)            # 14 h, on the 3rd
        _proposal(conn, "P5", "2014-01-03", "E", friday, "approved")
        _review(conn, "P5", "approved", "2014-01-07 00:30" + ny)            # after the 6th: still pending then
        _proposal(conn, "P6", "2014-01-02", "F", "2014-01-02 18:30" + ny)  # never decided: pending
        _proposal(conn, "P7", "2014-01-02", "G", "2014-01-02 18:30" + ny, "superseded")  # by G's night of the 3rd
        _proposal(conn, "P8", "2014-01-03", "H", friday, "superseded")     # only by H's night of the 7th
        _proposal(conn, "P9", "2014-01-06", "A", "2014-01-06 18:30" + ny)  # the night's own: not backlog
        _proposal(conn, "P0", "2013-12-31", "I", "2013-12-31 18:30" + ny, "approved")
        _review(conn, "P0", "approved", "2014-01-01 12:00" + ny)            # before the window

    data = reporting.load_report_data(engine, SECOND)
    assert data.window_start == dt.date(2014, 1, 2)
    day, window = data.decisions.loc["day"], data.decisions.loc["window"]
    # The night of the 6th: P9 only, undecided.
    assert data.decisions.loc["night", ["decided", "approved", "rejected"]].tolist() == [0, 0, 0]
    assert (day["decided"], day["approved"], day["rejected"]) == (3, 2, 1)
    assert (day["median_hours"], day["p90_hours"]) == (pytest.approx(64.0), pytest.approx(74.4))
    assert (window["decided"], window["approved"], window["rejected"]) == (4, 3, 1)   # + P4 on the 3rd
    assert (window["median_hours"], window["p90_hours"]) == (pytest.approx(63.25), pytest.approx(73.1))
    assert (data.backlog["pending"], data.backlog["oldest"]) == (3, dt.date(2014, 1, 2))   # P5, P6, P8

    html = reporting.build_drift_report(engine, SECOND, tmp_path).read_text()
    assert "<h3>Decisions taken on 2014-01-06</h3>" in html
    assert 'id="backlog">3<' in html and "(oldest 2014-01-02)" in html
    assert 'id="day-median-hours">64.0<' in html and 'id="window-p90-hours">73.1<' in html
    assert 'id="proposals-pending_review">1<' in html                                     # P9

    # The 3rd: P4 decided that day; P6 waits; P7 was superseded by G's night of the 3rd.
    friday_data = reporting.load_report_data(engine, FIRST, history_days=2)
    assert friday_data.window_start == dt.date(2014, 1, 2)
    # The night of the 3rd, reported on later: its proposals' decisions count, whenever taken
    # (P1, P3, P5 approved; P2 rejected; all after the 3rd) - not "0 approved, 0 rejected".
    assert friday_data.decisions.loc["night", ["decided", "approved", "rejected"]].tolist() == [4, 3, 1]
    friday_html = reporting.render_report(friday_data)
    assert 'id="night-approved">3<' in friday_html and 'id="night-rejected">1<' in friday_html
    assert friday_data.decisions.loc["day", ["decided", "approved", "rejected"]].tolist() == [1, 1, 0]
    assert friday_data.decisions.loc["day", "median_hours"] == pytest.approx(14.0)
    assert (friday_data.backlog["pending"], friday_data.backlog["oldest"]) == (1, dt.date(2014, 1, 2))
    # A window of one business date is the day itself; a day with no decision shows a dash.
    one = reporting.load_report_data(engine, SECOND, history_days=1)
    assert one.window_start == SECOND and one.decisions.loc["window", "decided"] == 3
    empty = reporting.load_report_data(engine, dt.date(2014, 1, 2))
    assert empty.decisions.loc["day", "decided"] == 0 and pd.isna(empty.decisions.loc["day", "median_hours"])
    assert 'id="day-median-hours">–<' in reporting.render_report(empty)


def test_funds_breached_but_waiting_and_the_band_of_the_holding_in_the_bar(engine, tmp_path):
    """W (hybrid, between calendar dates) breaches B's tight band while A drifts more inside a
    wide one; P was proposed by its calendar with no breach; T (threshold) breached with no
    proposal; U holds a security it should not (band 0); K is simply in band."""
    day = "2014-01-06"
    with engine.begin() as conn:
        _summary(conn, day, "W", policy="hybrid", max_abs_drift=0.08, breached=True, breach_count=1)
        _summary(conn, day, "P", policy="calendar", max_abs_drift=0.01, status="proposed", trigger="calendar")
        _summary(conn, day, "T", policy="threshold", max_abs_drift=0.07, breached=True, breach_count=1,
                 trigger="threshold")
        _summary(conn, day, "U", policy="threshold", max_abs_drift=0.03, breached=True, breach_count=1,
                 status="proposed", trigger="threshold")
        _summary(conn, day, "K", policy="threshold", max_abs_drift=0.005)
        for fund_id, security_id, target, drift, band, breached in (
                ("W", "A", 0.50, 0.08, 0.10, False), ("W", "B", 0.10, -0.03, 0.02, True),
                ("W", "CASH", 0.0, -0.05, None, False),
                ("P", "A", 0.50, 0.01, 0.05, False), ("P", "B", 0.50, -0.01, 0.05, False),
                ("T", "A", 0.50, 0.07, 0.05, True),
                ("U", "A", 0.60, 0.03, 0.05, False), ("U", "X", 0.0, 0.02, 0.0, True),
                ("K", "A", 0.50, 0.005, 0.05, False)):
            conn.execute(sa.text(
                "INSERT INTO rebalance.fund_drift (as_of_date, fund_id, security_id, target_weight, drift, band_lower,"
                " band_upper, breached) VALUES (:d, :f, :s, :t, :drift, :t - :b, :t + :b, :x)"),
                {"d": day, "f": fund_id, "s": security_id, "t": target, "drift": drift, "b": band, "x": breached})

    data = reporting.load_report_data(engine, SECOND)
    states = data.funds.set_index("fund_id")["state"].to_dict()
    assert states == {"W": "waiting", "P": "proposed", "T": "breached", "U": "proposed", "K": "in_band"}
    bars = reporting.drift_bars(data.funds, data.bands).set_index("fund_id")
    # W: the bar and the tick are B's (the breach), not A's larger drift inside its wide band.
    assert bars.loc["W", ["security_id", "bar", "band", "max_drift"]].tolist() == ["B", 0.03, 0.02, 0.08]
    assert bars.loc["P", "bar"] < bars.loc["P", "band"]            # proposed by its calendar: short of its tick
    assert bars.loc["U", ["security_id", "bar", "band"]].tolist() == ["X", 0.02, 0.0]   # the unwanted holding
    assert bars.loc["T", ["security_id", "bar", "band"]].tolist() == ["A", 0.07, 0.05]
    assert list(bars.index) == ["W", "T", "U", "P", "K"]           # ranked by max drift, as the table

    html = reporting.build_drift_report(engine, SECOND, tmp_path).read_text()
    assert [re.search(rf'id="funds-{s}">([^<]*)<', html).group(1) for s in reporting.FUND_STATES] \
        == ["2", "1", "1", "1", "0"]
    top = html.split("<h2>Top drifting funds</h2>", 1)[1]
    row = top[top.index('<td class="id">W</td>'):].split("</tr>", 1)[0]
    assert "breached, waits for its calendar date" in row and reporting.STATE_COLOURS["waiting"] in row
    assert "breached, no proposal" in top.split('<td class="id">T</td>', 1)[1].split("</tr>", 1)[0]
    assert "tick is that same holding's band" in html


def test_a_hybrid_fund_between_its_calendar_dates_waits_in_the_report(engine, landing, tmp_path):
    folder = small_landing(landing, FIRST)
    funds = pd.read_csv(folder / "funds.csv")
    funds.loc[funds["fund_id"] == "F1", ["policy", "frequency"]] = ["hybrid", "monthly"]   # 2 January was the 1st
    write(folder, "funds.csv", funds)
    steps.run_nightly(FIRST, landing, engine)
    data = reporting.load_report_data(engine, FIRST)
    f1 = data.funds.set_index("fund_id").loc["F1"]
    assert (f1["status"], bool(f1["breached"]), f1["state"]) == ("in_band", True, "waiting")
    html = reporting.build_drift_report(engine, FIRST, tmp_path).read_text()
    assert 'id="funds-waiting">1<' in html and 'id="funds-in_band">2<' in html and 'id="funds-proposed">0<' in html


def test_cli_report_html(reported, landing, tmp_path, monkeypatch):   # the CLI finds them by REBALANCE_WAREHOUSE_URL
    monkeypatch.setenv("REBALANCE_REPORTS_DIR", str(tmp_path / "default"))
    result = runner.invoke(app, ["report-html"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "default" / "drift_report_2014-01-06.html")
    assert (tmp_path / "default" / "drift_report_2014-01-06.html").exists()
    result = runner.invoke(app, ["report-html", "--date", "2014-01-03", "--out", str(tmp_path / "elsewhere")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere" / "drift_report_2014-01-03.html").exists()
    missing = runner.invoke(app, ["report-html", "--date", "2014-01-04", "--out", str(tmp_path)])
    assert missing.exit_code == 1 and "no night published for 2014-01-04" in missing.output
    assert "the latest night is 2014-01-06" in missing.output


def test_the_report_and_its_command_need_only_the_reader_role(engine, landing, tmp_path, monkeypatch):
    small_landing(landing, FIRST)
    steps.run_nightly(FIRST, landing, engine)
    url = engine.url.update_query_dict({"options": "-c role=rebalance_reader"}).render_as_string(hide_password=False)
    reader = sa.create_engine(url)
    try:
        with reader.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user")).scalar() == "rebalance_reader"
        reporting.require_views(reader)
        assert reporting.build_drift_report(reader, FIRST, tmp_path / "api").exists()
    finally:
        reader.dispose()
    monkeypatch.setenv("REBALANCE_WAREHOUSE_URL", url)
    result = runner.invoke(app, ["report-html", "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "drift_report_2014-01-03.html").exists()
    warehouse.get_engine(url).dispose()


def test_the_pipeline_runs_as_a_writer_login_and_the_view_reads_as_a_reader(engine, landing, tmp_path):
    """With the schema migrated by its owner, a night, a decision and the export need only
    rebalance_writer; the review queries need only rebalance_reader, which cannot decide."""
    from rebalance_pipeline import export
    from rebalance_pipeline.review import queries

    def as_role(role: str):
        return sa.create_engine(engine.url, connect_args={"options": f"-c role={role}"})

    small_landing(landing, FIRST)
    writer = as_role("rebalance_writer")
    assert warehouse.migrate(writer) == []            # up to date: nothing to do, no DDL
    report = steps.run_nightly(FIRST, landing, writer)
    assert report.new_proposals == 1
    with writer.connect() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar() == "rebalance_writer"
        proposal_id = conn.execute(sa.text("SELECT proposal_id FROM rebalance.proposal")).scalar_one()
    warehouse.decide(writer, proposal_id, "approved", by="ops")
    assert export.export_approved_orders(writer, tmp_path / "outbox").proposals == 1

    reader = as_role("rebalance_reader")
    page = queries.list_funds(reader, queries.FundFilter(as_of=FIRST))
    assert page.total == 3 and queries.proposal_detail(reader, proposal_id).reviews["decided_by"].tolist() == ["ops"]
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        warehouse.decide(reader, proposal_id, "rejected", by="intruder")
    writer.dispose()
    reader.dispose()
