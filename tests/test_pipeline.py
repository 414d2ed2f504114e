"""The nightly pipeline against a real PostgreSQL and real Great Expectations."""

from __future__ import annotations

import datetime as dt
import threading

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import record_export, run_at_once, small_landing, write, write_executions

from rebalance_pipeline import steps, warehouse
from rebalance_pipeline.landing import StructuralError
from rebalance_pipeline.warehouse import ReviewError, decide, read_frame

AS_OF = dt.date(2014, 1, 3)
NEXT = dt.date(2014, 1, 6)


def q(engine, sql, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn, sql, params)


def summary(engine, as_of=AS_OF) -> pd.DataFrame:
    return q(engine, "SELECT * FROM rebalance.fund_summary WHERE as_of_date = :d ORDER BY fund_id", d=as_of
             ).set_index("fund_id")


def table_counts(engine) -> dict[str, int]:
    tables = ["price", "position", "cash_balance", "fund_ref", "target_ref", "fund_drift", "fund_summary",
              "proposal", "proposal_trade", "pipeline_run", "run_artifact"]
    return {t: int(q(engine, f"SELECT count(*) AS n FROM rebalance.{t}")["n"][0]) for t in tables}


def test_a_night_end_to_end(engine, landing):
    small_landing(landing)
    report = steps.run_nightly(AS_OF, landing, engine)
    assert (report.funds, report.proposed, report.blocked, report.trades) == (3, 1, 0, 2)

    s = summary(engine)
    assert s["status"].to_dict() == {"F1": "proposed", "F2": "in_band", "F3": "in_band"}
    assert s.loc["F1", "trigger"] == "threshold"
    assert float(s.loc["F1", "nav"]) == 100_000 and float(s.loc["F1", "max_abs_drift"]) == pytest.approx(0.1)

    proposal = q(engine, "SELECT * FROM rebalance.proposal").iloc[0]
    assert proposal["status"] == "pending_review" and proposal["proposal_id"] == s.loc["F1", "proposal_id"]
    assert float(proposal["turnover"]) == pytest.approx(0.1)
    trades = q(engine, "SELECT security_id, side, quantity, notional FROM rebalance.proposal_trade ORDER BY 1")
    assert trades.values.tolist() == [["BD", "BUY", 100, 10000], ["EQ", "SELL", 100, 10000]]

    drift = q(engine, "SELECT fund_id, security_id, current_weight, target_weight, drift FROM rebalance.fund_drift")
    assert len(drift) == 8  # F1: EQ BD CASH, F2: EQ BD CASH, F3: GLD CASH
    counts = table_counts(engine)
    assert counts["price"] == 3 and counts["position"] == 5 and counts["fund_ref"] == 3
    assert counts["target_ref"] == 5 and counts["run_artifact"] == 0 and counts["pipeline_run"] == 1
    checks = q(engine, 'SELECT dataset, "check", success FROM rebalance.validation_result')
    assert len(checks) > 15 and checks["success"].all()


def _edit(folder, name, change):
    frame = pd.read_csv(folder / name, dtype=str)
    frame = change(frame)
    write(folder, name, frame)


FAULTS = {
    "held security with no price": (
        "prices.csv", lambda f: f[f["security_id"] != "GLD"],
        {"F3": "positions.csv row 6: holds GLD, which has no row in prices.csv; "
               "targets.csv row 6: targets GLD, which has no row in prices.csv"}),
    "negative price": (
        "prices.csv", lambda f: f.assign(close_price=f["close_price"].where(f["security_id"] != "EQ", "-5")),
        {"F1": "prices.csv row 2: EQ price -5.0 is not positive", "F2": "prices.csv row 2: EQ price -5.0 is not positive"}),
    "non-numeric price": (
        "prices.csv", lambda f: f.assign(close_price=f["close_price"].where(f["security_id"] != "GLD", "abc")),
        {"F3": "prices.csv row 4: GLD has no price or a price that is not a number"}),
    "security priced twice": (
        "prices.csv", lambda f: pd.concat([f, f[f["security_id"] == "BD"]]),
        dict.fromkeys(("F1", "F2"),
                      "prices.csv row 3: BD is priced more than once; prices.csv row 5: BD is priced more than once")),
    "targets not summing to 1": (
        "targets.csv", lambda f: f.assign(target_weight=f["target_weight"].where(
            ~((f["fund_id"] == "F2") & (f["security_id"] == "BD")), "0.4")),
        {"F2": "targets.csv: target weights (CASH included) sum to 0.9, not 1"}),
    "positions of an unknown fund": (
        "positions.csv", lambda f: pd.concat([f, pd.DataFrame([{"as_of_date": "2014-01-03", "fund_id": "F9",
                                                                "security_id": "EQ", "quantity": "5"}])]),
        {"F9": "positions.csv row 7: fund_id 'F9' is not a known fund (not in funds.csv)"}),
    "security in a currency with no fx rate": (
        "prices.csv", lambda f: f.assign(currency=f["currency"].where(f["security_id"] != "GLD", "EUR")),
        {"F3": "positions.csv row 6: holds GLD, priced in a currency with no rate to the fund's base in "
               "fx_rates.csv; targets.csv row 6: targets GLD, priced in a currency with no rate to the fund's "
               "base in fx_rates.csv"}),
    "negative quantity": (
        "positions.csv", lambda f: f.assign(quantity=f["quantity"].where(f["fund_id"] != "F3", "-1")),
        {"F3": "positions.csv row 6: quantity -1.0 of GLD is negative"}),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_row_faults_block_exactly_the_funds_they_touch(engine, landing, fault):
    file, change, expected = FAULTS[fault]
    folder = small_landing(landing)
    _edit(folder, file, change)
    report = steps.run_nightly(AS_OF, landing, engine)

    s = summary(engine)
    blocked = s[s["status"] == "blocked"]["blocked_reason"].to_dict()
    assert blocked == expected
    for fund in set(s.index) - set(expected):       # everyone else goes on as usual
        assert s.loc[fund, "status"] == ("proposed" if fund == "F1" else "in_band")
    assert report.blocked == len(expected)
    failed = q(engine, 'SELECT dataset, "check", failed_rows FROM rebalance.validation_result WHERE NOT success')
    assert len(failed) >= 1 and (failed["failed_rows"] > 0).all()


def test_fx_rates_value_foreign_securities_in_the_base_currency(engine, landing):
    folder = small_landing(landing)
    _edit(folder, "prices.csv", lambda f: f.assign(currency=f["currency"].where(f["security_id"] != "GLD", "EUR")))
    write(folder, "fx_rates.csv", [{"currency": "EUR", "base_currency": "USD", "rate": 1.25}])
    steps.run_nightly(AS_OF, landing, engine)
    s = summary(engine)
    assert s.loc["F3", "status"] == "in_band"
    assert float(s.loc["F3", "nav"]) == pytest.approx(2000 * 50 * 1.25)   # 2,000 GLD × 50 EUR × 1.25


def test_a_pending_subscription_is_invested_through_a_cash_flow_proposal(engine, landing):
    folder = small_landing(landing)
    write(folder, "flows.csv", [{"fund_id": "F2", "amount": 20_000}])  # F2 50/50 on 100,000
    steps.run_nightly(AS_OF, landing, engine)
    s = summary(engine)
    assert (s.loc["F2", "status"], s.loc["F2", "trigger"], float(s.loc["F2", "flow"])) == ("proposed", "cash_flow",
                                                                                           20_000)
    trades = q(engine, "SELECT security_id, side, quantity, reason FROM rebalance.proposal_trade t "
                       "JOIN rebalance.proposal p USING (proposal_id) WHERE p.fund_id = 'F2' ORDER BY 1")
    assert trades.values.tolist() == [["BD", "BUY", 100, "cash_flow"], ["EQ", "BUY", 100, "cash_flow"]]
    assert len(q(engine, "SELECT * FROM rebalance.flow WHERE as_of_date = :d", d=AS_OF)) == 1


def test_tax_lots_give_realized_gains_and_wash_sale_flags(engine, landing):
    folder = small_landing(landing)
    write(folder, "tax_lots.csv", [
        {"fund_id": "F1", "security_id": "EQ", "lot_id": "L1", "quantity": 400, "unit_cost": 80,
         "acquired_date": "2012-01-03"},
        {"fund_id": "F1", "security_id": "EQ", "lot_id": "L2", "quantity": 300, "unit_cost": 110,
         "acquired_date": "2013-12-15"},
    ])
    steps.run_nightly(AS_OF, landing, engine)
    # F1 sells 100 EQ at 100: highest cost first → L2, 100 × (100 − 110) = −1,000 short-term;
    # L2 was bought 19 days ago, so the loss sale is a wash sale.
    trade = q(engine, "SELECT est_realized_gain, est_realized_gain_short, est_realized_gain_long, wash_sale "
                      "FROM rebalance.proposal_trade WHERE side = 'SELL'").iloc[0]
    assert [float(trade[c]) for c in ("est_realized_gain", "est_realized_gain_short", "est_realized_gain_long")] == [
        -1000, -1000, 0]
    assert bool(trade["wash_sale"])
    proposal = q(engine, "SELECT est_realized_gain, wash_sale_trades FROM rebalance.proposal").iloc[0]
    assert float(proposal["est_realized_gain"]) == -1000 and proposal["wash_sale_trades"] == 1
    lots = q(engine, "SELECT lot_id, quantity, realized_gain, term FROM rebalance.proposal_trade_lot")
    assert lots.values.tolist() == [["L2", 100, -1000, "short"]]
    steps.run_nightly(AS_OF, landing, engine)   # rerun: lots replaced, not doubled
    assert len(q(engine, "SELECT * FROM rebalance.proposal_trade_lot")) == 1


def test_a_targeted_security_without_an_fx_rate_blocks_the_fund(engine, landing):
    folder = small_landing(landing)
    _edit(folder, "prices.csv", lambda f: f.assign(currency=f["currency"].where(f["security_id"] != "GLD", "EUR")))
    write(folder, "targets.csv", [
        {"fund_id": "F1", "security_id": "EQ", "target_weight": 0.6}, {"fund_id": "F1", "security_id": "BD",
                                                                       "target_weight": 0.4},
        {"fund_id": "F2", "security_id": "EQ", "target_weight": 0.5}, {"fund_id": "F2", "security_id": "BD",
                                                                       "target_weight": 0.3},
        {"fund_id": "F2", "security_id": "GLD", "target_weight": 0.2},
        {"fund_id": "F3", "security_id": "GLD", "target_weight": 1.0}])
    steps.run_nightly(AS_OF, landing, engine)
    s = summary(engine)
    assert s.loc["F2", "status"] == "blocked"
    assert "targets GLD, priced in a currency with no rate" in s.loc["F2", "blocked_reason"]
    assert s.loc["F1", "status"] == "proposed"


def test_a_rerun_without_the_dates_reference_file_falls_back_to_the_earlier_version(engine, landing):
    next_folder = _f1_model_changes_on_next(landing)
    steps.run_nightly(AS_OF, landing, engine)
    steps.run_nightly(NEXT, landing, engine)
    assert summary(engine, NEXT).loc["F1", "status"] == "in_band"          # the 70/30 model of NEXT
    (next_folder / "targets.csv").unlink()                                  # the vendor withdraws it
    steps.run_nightly(NEXT, landing, engine)
    assert summary(engine, NEXT).loc["F1", "status"] == "proposed"          # back to AS_OF's 60/40
    assert len(q(engine, "SELECT * FROM rebalance.target_ref WHERE valid_from = :d", d=NEXT)) == 0


def test_structural_fault_writes_nothing_and_keeps_the_previous_night(engine, landing):
    folder = small_landing(landing)
    steps.run_nightly(AS_OF, landing, engine)
    before = table_counts(engine)
    ids_before = q(engine, "SELECT proposal_id, status FROM rebalance.proposal")

    (folder / "positions.csv").write_text("as_of_date,fund_id,security_id\n2014-01-03,F1,EQ\n")
    with pytest.raises(StructuralError, match=r"positions\.csv, row 1, column 'quantity'"):
        steps.run_nightly(AS_OF, landing, engine)
    assert table_counts(engine) == before
    assert q(engine, "SELECT proposal_id, status FROM rebalance.proposal").equals(ids_before)


def test_rerun_is_idempotent(engine, landing):
    small_landing(landing)
    steps.run_nightly(AS_OF, landing, engine)
    first = table_counts(engine)
    first_ids = q(engine, "SELECT proposal_id FROM rebalance.proposal")
    steps.run_nightly(AS_OF, landing, engine)
    second = table_counts(engine)
    assert {k: v for k, v in second.items() if k != "pipeline_run"} == {
        k: v for k, v in first.items() if k != "pipeline_run"}
    assert second["pipeline_run"] == 2  # each run is logged once
    assert q(engine, "SELECT proposal_id FROM rebalance.proposal").equals(first_ids)
    orphans = q(engine, "SELECT count(*) AS n FROM rebalance.proposal_trade t "
                        "WHERE NOT EXISTS (SELECT 1 FROM rebalance.proposal p WHERE p.proposal_id = t.proposal_id)")
    assert orphans["n"][0] == 0


def test_an_approval_survives_a_rerun(engine, landing):
    small_landing(landing)
    steps.run_nightly(AS_OF, landing, engine)
    pid = summary(engine).loc["F1", "proposal_id"]
    decide(engine, pid, "approved", "ops.alice", "looks right")

    steps.run_nightly(AS_OF, landing, engine)
    proposals = q(engine, "SELECT proposal_id, status, reviewed_by, review_note FROM rebalance.proposal")
    assert proposals.values.tolist() == [[pid, "approved", "ops.alice", "looks right"]]
    assert summary(engine).loc["F1", "proposal_id"] == pid
    assert len(q(engine, "SELECT * FROM rebalance.proposal_trade WHERE proposal_id = :p", p=pid)) == 2


def test_a_rerun_with_new_data_adds_a_fresh_proposal_beside_the_reviewed_one(engine, landing):
    folder = small_landing(landing)
    steps.run_nightly(AS_OF, landing, engine)
    pid = summary(engine).loc["F1", "proposal_id"]
    decide(engine, pid, "rejected", "ops.bob", "wait for the corrected file")
    trades_before = q(engine, "SELECT * FROM rebalance.proposal_trade WHERE proposal_id = :p", p=pid)

    _edit(folder, "positions.csv", lambda f: f.assign(quantity=f["quantity"].where(
        ~((f["fund_id"] == "F1") & (f["security_id"] == "EQ")), "750")))
    steps.run_nightly(AS_OF, landing, engine)

    proposals = q(engine, "SELECT proposal_id, status, reviewed_by FROM rebalance.proposal ORDER BY created_at")
    assert proposals["status"].tolist() == ["rejected", "pending_review"]
    assert proposals["proposal_id"].iloc[0] == pid and proposals["reviewed_by"].iloc[0] == "ops.bob"
    new_pid = proposals["proposal_id"].iloc[1]
    assert summary(engine).loc["F1", "proposal_id"] == new_pid
    # Every column as it was; `shard` only says which leaf holds the row (-1: carried over).
    after = q(engine, "SELECT * FROM rebalance.proposal_trade WHERE proposal_id = :p", p=pid)
    assert after.drop(columns="shard").equals(trades_before.drop(columns="shard"))


def test_a_rerun_keeps_the_first_publication_time_of_a_proposal_it_finds_again(engine, landing):
    small_landing(landing)
    steps.run_nightly(AS_OF, landing, engine)
    first = q(engine, "SELECT proposal_id, created_at FROM rebalance.proposal")
    steps.run_nightly(AS_OF, landing, engine)
    again = q(engine, "SELECT proposal_id, created_at FROM rebalance.proposal")
    assert again.equals(first) and len(first) == 1


def test_a_second_approval_for_the_same_fund_and_date_is_refused(engine, landing):
    folder = small_landing(landing)
    steps.run_nightly(AS_OF, landing, engine)
    first = summary(engine).loc["F1", "proposal_id"]
    decide(engine, first, "approved", "ops.amy")
    _edit(folder, "positions.csv", lambda f: f.assign(quantity=f["quantity"].where(
        ~((f["fund_id"] == "F1") & (f["security_id"] == "EQ")), "750")))
    steps.run_nightly(AS_OF, landing, engine)            # a corrected file: a fresh proposal beside it
    fresh = summary(engine).loc["F1", "proposal_id"]
    assert fresh != first
    with pytest.raises(ReviewError, match=f"already has approved proposal {first}.*twice"):
        decide(engine, fresh, "approved", "ops.bob")
    assert decide(engine, fresh, "rejected", "ops.bob")["status"] == "rejected"   # rejecting is fine


def test_a_fund_waits_until_its_approved_orders_are_reported_done(engine, landing):
    """An approved proposal blocks its fund until the data says its orders are done (here the
    desk's executions.csv): the machine's clock has no say, so a 2014 night decides the same
    whenever it runs."""
    small_landing(landing, AS_OF)
    folder = small_landing(landing, NEXT, with_reference=False)
    steps.run_nightly(AS_OF, landing, engine)
    approved = summary(engine).loc["F1", "proposal_id"]
    decide(engine, approved, "approved", "ops.amy")
    record_export(engine, approved, "2014-01-06 10:00 America/New_York")  # exported in time: irrelevant now

    steps.run_nightly(NEXT, landing, engine)             # nothing reports its orders done
    held = summary(engine, NEXT).loc["F1"]
    assert held["status"] == "blocked" and held["proposal_id"] is None
    assert f"awaiting execution: approved proposal {approved} (2014-01-03) is not reported done" in held[
        "blocked_reason"]
    assert "until the approval expires on 2014-01-10" in held["blocked_reason"]   # 5 business days
    assert summary(engine, NEXT).loc["F2", "status"] == "in_band"     # other funds go on as usual
    state = q(engine, "SELECT * FROM rebalance.fund_state WHERE as_of_date = :d", d=NEXT).set_index("fund_id")
    assert state.loc["F1", "awaiting_proposal_id"] == approved and pd.isna(state.loc["F2", "awaiting_proposal_id"])

    write_executions(engine, folder, [approved])          # the desk's report of the 6th
    steps.run_nightly(NEXT, landing, engine)               # a rerun of the date reads it
    assert summary(engine, NEXT).loc["F1", "status"] == "proposed"  # the book still drifts: a new proposal
    state = q(engine, "SELECT * FROM rebalance.fund_state WHERE as_of_date = :d", d=NEXT).set_index("fund_id")
    assert pd.isna(state.loc["F1", "awaiting_proposal_id"])
    assert (state.loc["F1", "closed_proposal_id"], state.loc["F1", "closed_outcome"], state.loc["F1", "closed_by"]) \
        == (approved, "executed", "file")
    stored = q(engine, "SELECT proposal_id, security_id, side, quantity, status, source FROM rebalance.execution "
                       "ORDER BY security_id")
    assert stored[["security_id", "side", "status", "source"]].values.tolist() == [
        ["BD", "BUY", "filled", "file"], ["EQ", "SELL", "filled", "file"]]
    steps.run_nightly(NEXT, landing, engine)               # a rerun replaces the date's rows, no more
    assert len(q(engine, "SELECT * FROM rebalance.execution")) == 2


def test_bad_execution_rows_are_findings_that_never_stop_the_night(engine, landing):
    small_landing(landing, AS_OF)
    folder = small_landing(landing, NEXT, with_reference=False)
    steps.run_nightly(AS_OF, landing, engine)
    approved = summary(engine).loc["F1", "proposal_id"]
    decide(engine, approved, "approved", "ops.amy")
    write(folder, "executions.csv", [
        {"proposal_id": "NOPE", "security_id": "EQ", "side": "SELL", "quantity": 100, "price": 100},
        {"proposal_id": approved, "security_id": "EQ", "side": "HOLD", "quantity": 100, "price": 100},
        {"proposal_id": approved, "security_id": "BD", "side": "BUY", "quantity": -5, "price": 100},
    ])
    report = steps.run_nightly(NEXT, landing, engine)
    assert report.funds == 3
    checks = q(engine, 'SELECT "check", success, failed_rows, detail FROM rebalance.validation_result '
                       "WHERE as_of_date = :d AND dataset = 'executions'", d=NEXT).set_index("check")
    assert not checks.loc["executions_known_proposal", "success"]
    assert "executions.csv row 2, column proposal_id: value 'NOPE' is not a proposal id" in checks.loc[
        "executions_known_proposal", "detail"]
    assert "row 3, column side: value 'HOLD' is not BUY or SELL" in checks.loc["executions_side", "detail"]
    assert "row 4, column quantity: value '-5' is not a number >= 0" in checks.loc["executions_quantity", "detail"]
    assert summary(engine, NEXT).loc["F1", "status"] == "blocked"    # nothing usable said it was done
    assert q(engine, "SELECT count(*) AS n FROM rebalance.execution")["n"].iloc[0] == 0


def test_decisions_are_taken_once_and_audited(engine, landing):
    small_landing(landing)
    steps.run_nightly(AS_OF, landing, engine)
    pid = summary(engine).loc["F1", "proposal_id"]
    state = decide(engine, pid, "approved", "ops.alice")
    assert state["status"] == "approved"
    with pytest.raises(ReviewError, match=r"already approved by ops\.alice"):
        decide(engine, pid, "rejected", "ops.bob")
    with pytest.raises(ReviewError, match="no proposal NOPE"):
        decide(engine, "NOPE", "approved", "ops.bob")
    with pytest.raises(ReviewError, match="reviewer's name"):
        decide(engine, pid, "approved", "  ")
    audit = q(engine, "SELECT proposal_id, decision, decided_by FROM rebalance.proposal_review")
    assert audit.values.tolist() == [[pid, "approved", "ops.alice"]]
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text("UPDATE rebalance.proposal_review SET decided_by = 'mallory'"))


def test_a_newer_night_supersedes_pending_proposals_which_can_no_longer_be_approved(engine, landing):
    small_landing(landing, AS_OF)
    small_landing(landing, NEXT, with_reference=False)
    steps.run_nightly(AS_OF, landing, engine)
    old = summary(engine).loc["F1", "proposal_id"]
    steps.run_nightly(NEXT, landing, engine)
    new = summary(engine, NEXT).loc["F1", "proposal_id"]
    statuses = q(engine, "SELECT proposal_id, status FROM rebalance.proposal").set_index("proposal_id")["status"]
    assert statuses[old] == "superseded" and statuses[new] == "pending_review"
    with pytest.raises(ReviewError, match="superseded"):
        decide(engine, old, "approved", "ops.alice")


def _f1_model_changes_on_next(landing):
    """AS_OF brings all reference data; NEXT brings only F1's new 70/30 model (its book is 70/30)."""
    small_landing(landing, AS_OF)
    next_folder = small_landing(landing, NEXT, with_reference=False)
    write(next_folder, "targets.csv", [{"fund_id": "F1", "security_id": "EQ", "target_weight": 0.7},
                                       {"fund_id": "F1", "security_id": "BD", "target_weight": 0.3}])
    return next_folder


def test_reference_data_keeps_its_history(engine, landing):
    _f1_model_changes_on_next(landing)
    steps.run_nightly(AS_OF, landing, engine)
    steps.run_nightly(NEXT, landing, engine)
    steps.run_nightly(AS_OF, landing, engine)   # a rerun of the earlier date still uses the earlier model
    third = dt.date(2014, 1, 7)
    small_landing(landing, third, with_reference=False)
    steps.run_nightly(third, landing, engine)

    assert summary(engine, AS_OF).loc["F1", "status"] == "proposed"
    assert summary(engine, NEXT).loc["F1", "status"] == "in_band"
    assert summary(engine, third).loc["F1", "status"] == "in_band"
    assert summary(engine, NEXT).loc["F2", "status"] == "in_band"  # F2 kept its model from AS_OF


def test_first_date_without_reference_data_is_structural(engine, landing):
    small_landing(landing, AS_OF, with_reference=False)
    with pytest.raises(StructuralError, match=r"funds\.csv: not in this date's folder and no earlier version"):
        steps.run_nightly(AS_OF, landing, engine)


def test_two_runs_of_one_date_at_once_do_not_interleave(engine, landing):
    small_landing(landing)
    errors = run_at_once(lambda: steps.run_nightly(AS_OF, landing, engine))
    assert errors == []
    counts = table_counts(engine)
    assert (counts["fund_summary"], counts["fund_drift"], counts["proposal"], counts["proposal_trade"]) == (3, 8, 1, 2)
    assert counts["price"] == 3 and counts["position"] == 5 and counts["pipeline_run"] == 4


def test_publish_holds_the_date_lock(engine, landing):
    """While another transaction holds the date's lock, a publish waits for it."""
    small_landing(landing)
    done = threading.Event()
    with engine.begin() as conn:
        warehouse.date_lock(conn, AS_OF)
        worker = threading.Thread(target=lambda: (steps.run_nightly(AS_OF, landing, engine), done.set()))
        worker.start()
        assert not done.wait(3.0), "publish went ahead while the date was locked"
    worker.join(60)
    assert done.is_set()


def test_asset_class_file_overrides_bands_from_its_date_on(engine, landing):
    folder = small_landing(landing)
    write(folder, "securities.csv", [{"security_id": s, "lot_size": 1, "asset_class": c, "tradable": "true"}
                                     for s, c in (("EQ", "equity"), ("BD", "fixed_income"), ("GLD", "commodity"))])
    # F2 is 50/50 on target; tighten nothing it holds. F3 holds only GLD at 100 %: in band.
    # F1's BD at 30 % vs 40 %: breaches the fund's 5 pp already; with a 20 pp override it would not,
    # but EQ (equity, no override) still breaches, so F1 stays proposed.
    write(folder, "asset_classes.csv", [{"asset_class": "fixed_income", "abs_band": 0.20, "rel_band": None,
                                         "half_spread_bps": 10}])
    steps.run_nightly(AS_OF, landing, engine)
    bands = q(engine, "SELECT security_id, band_lower, band_upper, breached FROM rebalance.fund_drift "
                      "WHERE fund_id = 'F1' AND security_id <> 'CASH' ORDER BY 1")
    got = [[r.security_id, float(r.band_lower), float(r.band_upper), bool(r.breached)] for r in bands.itertuples()]
    assert got == [["BD", pytest.approx(0.2), pytest.approx(0.6), False],
                   ["EQ", pytest.approx(0.55), pytest.approx(0.65), True]]
    cost = q(engine, "SELECT est_cost FROM rebalance.proposal_trade WHERE security_id = 'BD'")["est_cost"][0]
    # 10 bp half spread: 100 BD (10,000 + 10 of cost) no longer fits the 10,000 the EQ sale
    # raises, so the buy is 99 shares: 9,900 × 10 bp = 9.90.
    assert float(cost) == pytest.approx(9.9)
    assert len(q(engine, "SELECT * FROM rebalance.asset_class_ref")) == 1
