"""What the `rebalance` command says: formats, table widths, messages, exit codes, help."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import build_once, copy_of, small_landing, write
from typer.testing import CliRunner

from rebalance_pipeline import formatting as fmt
from rebalance_pipeline import steps
from rebalance_pipeline.cli import EXIT_CANNOT_RUN, EXIT_REFUSED, EXIT_USAGE, app
from rebalance_pipeline.warehouse import decide

AS_OF, NEXT = dt.date(2014, 1, 3), dt.date(2014, 1, 6)
runner = CliRunner()


def invoke(*args: str, width: int = 80):
    return runner.invoke(app, list(args), env={"COLUMNS": str(width)}, catch_exceptions=False)


def proposal_of(engine, fund_id: str, as_of: dt.date) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT proposal_id FROM rebalance.proposal WHERE fund_id = :f "
                                    "AND as_of_date = :d"), {"f": fund_id, "d": as_of}).scalar_one()


# ------------------------------------------------------------------ one formatting policy
@pytest.fixture(scope="module")
def built_night(warehouses, tmp_path_factory):
    """The hand-sized night of AS_OF, run once for the module."""
    def build(engine, landing):
        small_landing(landing, AS_OF)
        steps.run_nightly(AS_OF, landing, engine)

    yield from build_once(warehouses, tmp_path_factory, build)


@pytest.fixture
def night(built_night, warehouses, database_url, monkeypatch, landing):
    """The ``engine`` fixture's contract on a copy of that night."""
    return copy_of(built_night, warehouses, database_url, monkeypatch, landing)


def test_one_formatting_policy():
    assert fmt.quantity(24298.0) == "24,298" and fmt.quantity(12.5) == "12.5" and fmt.quantity(1 / 3) == "0.3333"
    assert fmt.money(0) == "0.00" and fmt.money(1234.5, "USD") == "1,234.50 USD" and fmt.money(-0.001) == "0.00"
    assert fmt.percent(0.0599) == "5.99%" and fmt.percent(0) == "0.00%"
    assert fmt.price(24.5) == "24.50" and fmt.price(12.34567) == "12.3457"
    assert fmt.yes_no(False) == "" and fmt.yes_no(True) == "yes" and fmt.yes_no(False, no="no") == "no"
    assert fmt.band(0.03, 0.08) == "3.00%–8.00%" and fmt.band(None, None) == ""
    assert fmt.cell("quantity", 24298.0) == "24,298" and fmt.cell("est_cost", 0.0) == "0.00"
    assert fmt.cell("drift", 0.0599) == "5.99%" and fmt.cell("wash_sale", False) == ""
    assert fmt.money(None) == "" and fmt.jinja_filters()["money"](None) == "–"


# ------------------------------------------------------------------ help
@pytest.mark.parametrize("command", ["run", "approve", "reject", "executed", "report", "report-html", "proposals", "show",
                                     "export", "sample", "simulate"])
def test_help_shows_no_developer_noise_and_explains_every_option(command):
    result = invoke(command, "--help", width=120)
    assert result.exit_code == 0
    assert "<bool>" not in result.output and "{" not in result.output and "00:00:00" not in result.output
    from typer.main import get_command

    click_command = get_command(app).commands[command]
    undocumented = [p.name for p in click_command.params if not getattr(p, "help", None)
                    and p.param_type_name == "option"]
    assert undocumented == []


def test_help_names_the_argument_and_the_default_start_as_a_date():
    assert "show [OPTIONS] PROPOSAL_ID" in invoke("show", "--help", width=120).output
    assert "2014-01-02" in invoke("sample", "--help", width=120).output
    assert "3 the night cannot run" in invoke("--help", width=120).output


# ------------------------------------------------------------------ asking
def test_a_choice_is_validated_and_the_valid_ones_are_listed(engine):
    result = invoke("proposals", "--status", "pending")
    assert result.exit_code == EXIT_USAGE == 2
    assert "pending_review" in result.output and "superseded" in result.output


def test_a_date_with_no_night_says_so_and_names_the_latest(night, landing):   # the CLI reads the copy of the night
    for command in ("report", "report-html", "proposals"):
        result = invoke(command, "--date", "2014-01-05")
        assert result.exit_code == EXIT_REFUSED, (command, result.output)
        assert "no night published for 2014-01-05" in result.output
        assert "the latest night is 2014-01-03" in result.output


def test_run_says_why_a_night_cannot_run_with_its_own_exit_code(engine, landing):
    small_landing(landing, AS_OF)
    saturday = invoke("run", "--date", "2014-01-04", "--landing", str(landing))
    assert saturday.exit_code == EXIT_CANNOT_RUN == 3
    assert "2014-01-04 (Saturday) is not a trading day on the funds' calendars (XNYS)" in saturday.output
    assert "2014-01-03 and 2014-01-06" in saturday.output
    typo = invoke("run", "--date", "2014-01-03", "--landing", str(landing) + "x")
    assert typo.exit_code == EXIT_CANNOT_RUN and f"the landing root {landing}x does not exist" in typo.output
    missing = invoke("run", "--date", "2014-01-06", "--landing", str(landing))
    assert missing.exit_code == EXIT_CANNOT_RUN
    assert "no folder" in missing.output and "from 2014-01-03 to 2014-01-03" in missing.output
    bad_date = invoke("run", "--date", "2014-13-01", "--landing", str(landing))
    assert bad_date.exit_code == EXIT_USAGE


# ------------------------------------------------------------------ reading
def test_run_prints_readable_steps_and_a_rerun_says_unchanged(engine, landing):
    small_landing(landing, AS_OF)
    first = invoke("run", "--date", "2014-01-03", "--landing", str(landing))
    assert first.exit_code == 0, first.output
    assert "3 funds, 5 positions, 1 shard" in first.output and "1 new proposal" in first.output
    rerun = invoke("run", "--date", "2014-01-03", "--landing", str(landing), "--quiet")
    assert rerun.exit_code == 0
    assert "1 proposal re-published unchanged" in rerun.output and "new proposal" not in rerun.output
    for noise in ("PublishReport", "new_proposals", "{'", "Date("):
        assert noise not in first.output + rerun.output


def test_tables_fit_the_terminal_and_never_cut_an_id(night, landing):
    engine = night
    pid = proposal_of(engine, "F1", AS_OF)
    for width in (60, 80, 160):
        for args in (("report",), ("proposals",), ("show", pid)):
            output = invoke(*args, width=width).output
            table_lines = [line for line in output.splitlines() if line[:1] in "┏┃┡│└"]
            assert table_lines and all(len(line) <= width for line in table_lines), (args, width, output)
            assert pid in output
    narrow = invoke("proposals", width=60).output
    assert "not shown on a terminal this narrow" in narrow
    assert "not shown" not in invoke("show", pid, width=200).output


def test_show_says_nav_currency_bands_and_formats_numbers(night, landing):
    engine = night
    pid = proposal_of(engine, "F1", AS_OF)
    output = invoke("show", pid, width=200).output
    assert "NAV 100,000.00 USD" in output and "est. cost 0.00 USD" in output
    eq = next(line for line in output.splitlines() if "│ EQ " in line)
    assert "100 │" in eq and "100.00" not in eq.split("│")[3]     # whole shares, no decimals
    assert "70.00%" in eq and "60.00%" in eq and "55.00%–65.00%" in eq and "band_breach" in eq
    assert "False" not in output and "0.0000" not in output


def test_cut_lists_say_how_many_more_and_where(night, landing):
    engine = night
    result = invoke("proposals", "--limit", "1", "--date", "2014-01-03")
    assert result.exit_code == 0
    assert "no proposals" not in result.output
    with engine.begin() as conn:   # a second proposal of the night, so that the list is cut
        conn.execute(sa.text("INSERT INTO rebalance.proposal (proposal_id, as_of_date, fund_id, trigger, nav, turnover,"
                             " trade_count, run_id) VALUES ('F2-20140103-000000000000', '2014-01-03', 'F2', "
                             "'threshold', 100000, 0.01, 0, 'r')"))
    cut = invoke("proposals", "--limit", "1", "--date", "2014-01-03", width=120)
    assert "… and 1 more (of 2): rebalance proposals --date 2014-01-03 --limit 2" in cut.output


# ------------------------------------------------------------------ truth
def test_report_counts_funds_by_the_same_states_as_the_html_report(engine, landing):
    folder = small_landing(landing, AS_OF)
    funds = pd.read_csv(folder / "funds.csv")
    funds.loc[funds["fund_id"] == "F1", ["policy", "frequency"]] = ["hybrid", "monthly"]   # 2 January was the 1st
    write(folder, "funds.csv", funds)
    steps.run_nightly(AS_OF, landing, engine)
    output = invoke("report", "--date", "2014-01-03", width=120).output
    rows = {m.group(1).strip(): int(m.group(2)) for m in re.finditer(r"│ ([a-z ,]+?)\s+│\s+(\d+) │", output)}
    assert rows == {"proposed": 0, "breached, waits for its calendar date": 1, "in band": 2, "blocked": 0}


def test_approving_after_a_blocked_night_says_what_happened(engine, landing):
    small_landing(landing, AS_OF)
    folder = small_landing(landing, NEXT, with_reference=False)
    write(folder, "prices.csv", [{"as_of_date": NEXT.isoformat(), "security_id": s, "close_price": p,
                                  "currency": "USD"} for s, p in (("EQ", -5.0), ("BD", 100.0), ("GLD", 50.0))])
    steps.run_nightly(AS_OF, landing, engine)
    steps.run_nightly(NEXT, landing, engine)
    old = proposal_of(engine, "F1", AS_OF)
    refused = invoke("approve", old, "--by", "ops.alice", width=200)
    assert refused.exit_code == EXIT_REFUSED
    assert "later proposal" not in refused.output
    assert "fund F1 blocked on 2014-01-06: prices.csv row" in refused.output
    shown = invoke("show", old, width=200).output
    assert "since then: fund F1 blocked on 2014-01-06" in shown


def test_a_proposal_rejected_before_that_comes_back_says_so(engine, landing, tmp_path):
    small_landing(landing, AS_OF)
    small_landing(landing, NEXT, with_reference=False)   # same book, same prices: the same trades
    steps.run_nightly(AS_OF, landing, engine)
    first = proposal_of(engine, "F1", AS_OF)
    decide(engine, first, "rejected", "ops.bob", "wait for the flows")
    steps.run_nightly(NEXT, landing, engine)
    again = proposal_of(engine, "F1", NEXT)
    assert again != first and again.rsplit("-", 1)[1] == first.rsplit("-", 1)[1]
    today = dt.datetime.now(dt.UTC).astimezone(__import__("zoneinfo").ZoneInfo("America/New_York")).date()
    expected = f"rejected on {today} by ops.bob: wait for the flows"
    assert expected in invoke("show", again, width=200).output
    report = invoke("report", width=200).output
    assert "Proposed again after a rejection" in report and expected in report
    from rebalance_pipeline import reporting

    html = reporting.build_drift_report(engine, NEXT, tmp_path).read_text()
    assert 'id="came-back"' in html and f"{again}</span>: the same trades were {expected}" in html


# ------------------------------------------------------------------ the second morning
def test_sample_extends_a_folder_by_the_next_trading_day(tmp_path, monkeypatch):
    # No warehouse holds these nights (one that cannot be reached): no desk, no executions.csv.
    monkeypatch.setenv("REBALANCE_WAREHOUSE_URL", "postgresql://nobody@127.0.0.1:1/none")
    landing = tmp_path / "landing"
    assert invoke("sample", "--out", str(landing), "--days", "2", "--funds", "4", "--holdings", "5").output.split() \
        == ["2014-01-02", "2014-01-03"]
    extended = invoke("sample", "--out", str(landing), "--extend")
    assert extended.exit_code == 0 and extended.output.split() == ["2014-01-06"]   # after a weekend
    before, after = (pd.read_csv(landing / d / "positions.csv") for d in ("2014-01-03", "2014-01-06"))
    assert (after["as_of_date"] == "2014-01-06").all()
    assert after.drop(columns="as_of_date").equals(before.drop(columns="as_of_date"))     # the same book
    prices = pd.read_csv(landing / "2014-01-06" / "prices.csv")
    assert (prices["as_of_date"] == "2014-01-06").all() and (prices["close_price"] > 0).all()
    assert not (landing / "2014-01-06" / "funds.csv").exists()     # reference data carries over
    assert not (landing / "2014-01-06" / "executions.csv").exists()
    assert invoke("sample", "--out", str(landing), "--extend", "--days", "2").output.split() \
        == ["2014-01-07", "2014-01-08"]
    missing = invoke("sample", "--out", str(tmp_path / "nope"), "--extend")
    assert missing.exit_code == EXIT_REFUSED and "does not exist" in missing.output


def test_an_extended_demo_folder_runs_its_second_morning(engine, tmp_path):
    landing = tmp_path / "landing"
    invoke("sample", "--out", str(landing), "--days", "1", "--funds", "6", "--holdings", "4")
    assert invoke("run", "--date", "2014-01-02", "--landing", str(landing), "--quiet").exit_code == 0
    invoke("sample", "--out", str(landing), "--extend")
    second = invoke("run", "--date", "2014-01-03", "--landing", str(landing), "--quiet")
    assert second.exit_code == 0, second.output
    assert "2014-01-03: 6 funds" in second.output


# ------------------------------------------------------------------ the operator's word on execution
def test_executed_marks_an_approved_proposal_and_the_next_night_reads_it(engine, landing):
    small_landing(landing, AS_OF)
    small_landing(landing, NEXT, with_reference=False)
    assert invoke("run", "--date", "2014-01-03", "--landing", str(landing), "--quiet").exit_code == 0
    pid = proposal_of(engine, "F1", AS_OF)
    refused = invoke("executed", pid, "--by", "ops.amy")
    assert refused.exit_code == EXIT_REFUSED and "is pending_review: only an approved proposal" in refused.output
    assert invoke("executed", "NOPE", "--by", "ops.amy").exit_code == EXIT_REFUSED
    decide(engine, pid, "approved", "ops.amy")
    done = invoke("executed", pid, "--by", "ops.bob", "--note", "desk confirmed by phone", width=200)
    assert done.exit_code == 0, done.output
    assert f"{pid} (F1, 2014-01-03): 2 orders filled by ops.bob" in done.output
    assert "the night after 2014-01-03 reads it" in done.output
    assert invoke("run", "--date", "2014-01-06", "--landing", str(landing), "--quiet").exit_code == 0
    with engine.connect() as conn:
        state = conn.execute(sa.text("SELECT closed_proposal_id, closed_by, awaiting_proposal_id FROM "
                                     "rebalance.fund_state WHERE as_of_date = :d AND fund_id = 'F1'"),
                             {"d": NEXT}).one()
        status = conn.execute(sa.text("SELECT status FROM rebalance.fund_summary WHERE as_of_date = :d AND "
                                      "fund_id = 'F1'"), {"d": NEXT}).scalar_one()
    assert tuple(state) == (pid, "operator", None) and status == "proposed"


def test_an_extended_day_has_yesterdays_flows_in_cash_and_no_new_flows(tmp_path):
    """A subscription is pending once: on the next day it is cash (as the replay settles it),
    not a flows.csv row to be invested again."""
    import pandas as pd

    from rebalance_pipeline.sample import extend_landing, generate

    out = tmp_path / "landing"
    last = generate(out, dt.date(2014, 1, 2), days=1, funds=6, holdings=4, flow_share=1.0)[-1]
    flows = pd.read_csv(out / last.isoformat() / "flows.csv", dtype={"fund_id": str})
    assert len(flows)
    (new,) = extend_landing(out)
    before = pd.read_csv(out / last.isoformat() / "cash.csv", dtype={"fund_id": str}).groupby("fund_id")["amount"].sum()
    after = pd.read_csv(out / new.isoformat() / "cash.csv", dtype={"fund_id": str}).groupby("fund_id")["amount"].sum()
    expected = before.add(flows.groupby("fund_id")["amount"].sum(), fill_value=0.0)
    assert after.to_dict() == pytest.approx(expected.round(2).to_dict(), abs=0.01)
    assert not (out / new.isoformat() / "flows.csv").exists()
