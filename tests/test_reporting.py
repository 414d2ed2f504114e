"""Reporting: the V005 views and roles, and the HTML drift report, on a real PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import small_landing, write
from typer.testing import CliRunner

from rebalance_pipeline import reporting, steps, warehouse
from rebalance_pipeline.cli import app
from rebalance_pipeline.warehouse import decide, read_frame

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


def age(engine, proposal_id: str, hours: float) -> None:
    """Pretend the proposal was published ``hours`` ago (a decision's latency is then ~hours)."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE rebalance.proposal SET created_at = created_at - make_interval(secs => :s) "
                             "WHERE proposal_id = :id"), {"s": hours * 3600, "id": proposal_id})


def two_nights(engine, landing) -> dict[str, str]:
    """2014-01-03: F1 proposed, approved 2 h later. 2014-01-06 (equities +30 %): F1 and F2
    proposed, F2 rejected 5 h later, F1 pending; F3 in band on both nights."""
    small_landing(landing, FIRST)
    steps.run_nightly(FIRST, landing, engine)
    first = pid(engine, "F1", FIRST)
    age(engine, first, 2)
    decide(engine, first, "approved", "ops.alice", "ok", channel="cli")

    folder = small_landing(landing, SECOND, with_reference=False)
    write(folder, "prices.csv", [{"as_of_date": SECOND.isoformat(), "security_id": s, "close_price": p,
                                  "currency": "USD"} for s, p in (("EQ", 130.0), ("BD", 100.0), ("GLD", 50.0))])
    steps.run_nightly(SECOND, landing, engine)
    f2 = pid(engine, "F2", SECOND)
    age(engine, f2, 5)
    decide(engine, f2, "rejected", "ops.bob", "too costly", channel="ui")
    return {"F1_first": first, "F1_second": pid(engine, "F1", SECOND), "F2_second": f2}


# ------------------------------------------------------------------ views
def test_views_after_two_nights_and_decisions(engine, landing):
    ids = two_nights(engine, landing)
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
    assert not h["exported"].any() and h["exported_at"].isna().all()
    proposals = q(engine, "SELECT * FROM rebalance.proposal").set_index("proposal_id")
    columns = ["fund_id", "as_of_date", "status", "trigger", "turnover", "est_cost", "est_realized_gain", "created_at"]
    pd.testing.assert_frame_equal(h[columns].sort_index(), proposals[columns].sort_index(), check_names=False)

    latency = q(engine, "SELECT * FROM rebalance.approval_latency ORDER BY as_of_date").set_index("proposal_id")
    audit = q(engine, "SELECT DISTINCT ON (proposal_id) proposal_id, decided_at FROM rebalance.proposal_review "
                      "ORDER BY proposal_id, decided_at, review_id").set_index("proposal_id")
    assert list(latency.index) == [ids["F1_first"], ids["F2_second"]]
    for proposal_id, hours in ((ids["F1_first"], 2), (ids["F2_second"], 5)):
        row = latency.loc[proposal_id]
        assert row["latency"] == audit.at[proposal_id, "decided_at"] - proposals.at[proposal_id, "created_at"]
        assert row["decided_at"] - row["created_at"] == row["latency"]
        assert float(row["latency_hours"]) == pytest.approx(row["latency"].total_seconds() / 3600, abs=1e-4)
        assert hours <= float(row["latency_hours"]) < hours + 0.5
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
    with pytest.raises(sa.exc.DBAPIError, match=match):
        with conn.begin_nested():
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


def test_drift_report_is_self_contained_with_charts_headline_and_escaping(engine, landing, tmp_path):
    two_nights(engine, landing)
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
    assert (headline("funds-proposed"), headline("funds-in_band"), headline("funds-blocked")) == ("2", "1", "1")
    assert (headline("proposals-pending_review"), headline("proposals-approved"), headline("proposals-rejected")) \
        == ("1", "0", "1")
    nav = 130 * 700 + 100 * 300 + 130 * 500 + 100 * 500 + 50 * 2000 + 1000
    assert f"{nav:,.0f}</div><div class=\"l\">NAV USD" in html
    assert "price_positive" in html and "prices.csv row 9" in html
    # The hostile fund drifts most: first row of the top table.
    top = html.split("<h2>Top drifting funds</h2>", 1)[1]
    assert top.index("&lt;script&gt;") < top.index(">F1<") and top.index(">F1<") < top.index(">F3<")


def test_report_data_trend_counts_each_nights_own_proposals(engine, landing):
    two_nights(engine, landing)
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


def test_report_date_rule(engine, landing):
    two_nights(engine, landing)
    midnight = dt.datetime(2014, 1, 5, tzinfo=dt.UTC)
    assert reporting.resolve_report_date(engine, "2014-01-03", [{"as_of_date": "2014-01-06"}], midnight) == FIRST
    assert reporting.resolve_report_date(engine, None, [{"as_of_date": "2014-01-03"}, {}, {"as_of_date": "2014-01-06"}],
                                         midnight) == SECOND
    assert reporting.resolve_report_date(engine, None, [{}], midnight) == FIRST  # latest on or before the 5th
    assert reporting.resolve_report_date(engine, None, [], dt.datetime(2014, 1, 6, tzinfo=dt.UTC)) == SECOND
    assert reporting.resolve_report_date(engine, None, [], None, dt.datetime(2014, 2, 1, 15, tzinfo=dt.UTC)) == SECOND
    with pytest.raises(LookupError, match="on or before 2014-01-02"):
        reporting.resolve_report_date(engine, None, [], dt.datetime(2014, 1, 2, tzinfo=dt.UTC))


def test_cli_report_html(engine, landing, tmp_path, monkeypatch):
    two_nights(engine, landing)
    monkeypatch.setenv("REBALANCE_REPORTS_DIR", str(tmp_path / "default"))
    result = runner.invoke(app, ["report-html"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "default" / "drift_report_2014-01-06.html")
    assert (tmp_path / "default" / "drift_report_2014-01-06.html").exists()
    result = runner.invoke(app, ["report-html", "--date", "2014-01-03", "--out", str(tmp_path / "elsewhere")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere" / "drift_report_2014-01-03.html").exists()
    missing = runner.invoke(app, ["report-html", "--date", "2014-01-04", "--out", str(tmp_path)])
    assert missing.exit_code == 1 and "nothing published for 2014-01-04" in missing.output


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
