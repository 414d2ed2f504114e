"""The fund state carried from night to night (rebalance_core.fund_state), in the pure core:
a model change stays pending, an approval blocks its fund until the data says its orders
are done or it expires, and nothing depends on the machine's clock (every date is 2014)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from frames import book, funds_frame

from rebalance_core.fund_state import (
    DEFAULT_EXECUTION_EXPIRY_DAYS,
    FUND_STATE_COLUMNS,
    expiry_dates,
    seed_state,
    targets_keys,
)
from rebalance_core.night import NightInputs, decide_night

JAN = {d: dt.date(2014, 1, d) for d in (2, 3, 6, 7, 8, 9, 10, 13)}
NO_TARGETS = pd.DataFrame(columns=["fund_id", "security_id", "target_weight"])


def model(*versions):
    """versions: (folder date, {security: weight}) of model M."""
    return pd.DataFrame([{"model_id": "M", "security_id": s, "target_weight": w, "valid_from": pd.Timestamp(v),
                          "effective_date": None, "source_row": i + 2}
                         for v, weights in versions for i, (s, w) in enumerate(weights.items())])


# A calendar fund (monthly, so no date below starts a period) on model M, 60/40 held; M moves
# to 40/60 on the 3rd: a 20 pp drift against its 5 pp band.
MODEL = model((JAN[2], {"EQ": 0.6, "BD": 0.4}), (JAN[3], {"EQ": 0.4, "BD": 0.6}))


def night(as_of, previous, positions=None, funds=None, **extra) -> tuple:
    fund = funds if funds is not None else funds_frame({"fund_id": "F", "model_id": "M", "policy": "calendar",
                                                         "frequency": "monthly"})
    _, held, prices, cash = book("F", {"EQ": (600, 100, 0.6), "BD": (400, 100, 0.4)})
    inputs = NightInputs(prices=prices, positions=positions if positions is not None else held, cash=cash,
                         funds=fund, targets=NO_TARGETS, model_targets=MODEL, previous_state=previous, **extra)
    decision = decide_night(as_of, inputs)
    return decision, decision.summary.set_index("fund_id").loc["F"], decision.fund_state.set_index("fund_id").loc["F"]


def approved_from(decision, as_of) -> pd.DataFrame:
    """The approved-history facts of the decision's proposal (as the warehouse returns them)."""
    trades = decision.trades
    before = decision.drift.set_index(["fund_id", "security_id"])["quantity"]
    return pd.DataFrame({
        "fund_id": trades["fund_id"], "proposal_id": trades["proposal_id"], "proposal_date": pd.Timestamp(as_of),
        "approved_at": pd.Timestamp("2014-01-06 09:30", tz="America/New_York"), "security_id": trades["security_id"],
        "side": trades["side"], "quantity": trades["quantity"],
        "quantity_before": [before.get((f, s), np.nan) for f, s in zip(trades["fund_id"], trades["security_id"],
                                                                        strict=True)]})


def executions(approved, status="filled", source="file", only=None) -> pd.DataFrame:
    rows = approved if only is None else approved[approved["security_id"].isin(only)]
    return pd.DataFrame({"fund_id": rows["fund_id"], "proposal_id": rows["proposal_id"],
                         "security_id": rows["security_id"], "side": rows["side"], "quantity": rows["quantity"],
                         "price": 100.0, "status": status, "source": source})


def after_trades(approved) -> pd.DataFrame:
    signed = approved["quantity"].where(approved["side"] == "BUY", -approved["quantity"])
    return pd.DataFrame({"fund_id": "F", "security_id": approved["security_id"],
                         "quantity": approved["quantity_before"] + signed})


# ------------------------------------------------------------------ targets in force
def test_the_targets_key_ignores_order_zero_weights_and_rounding_noise():
    a = pd.DataFrame([("A", "EQ", 0.6), ("A", "BD", 0.4), ("B", "EQ", 1.0)],
                     columns=["fund_id", "security_id", "target_weight"])
    b = pd.DataFrame([("A", "BD", 0.4), ("A", "GLD", 0.0), ("A", "EQ", 0.6 + 1e-13), ("B", "EQ", 0.9),
                      ("B", "BD", 0.1)], columns=["fund_id", "security_id", "target_weight"])
    ka, kb = targets_keys(a), targets_keys(b)
    assert ka["A"] == kb["A"] and ka["B"] != kb["B"]


def test_a_funds_first_night_has_nothing_to_compare():
    _, fund, state = night(JAN[3], previous=None)
    assert pd.isna(fund["trigger"]) and fund["status"] == "in_band"   # calendar fund, not a period start
    assert state["model_change_since"] is pd.NaT or pd.isna(state["model_change_since"])
    assert list(state.index) == FUND_STATE_COLUMNS[:1] + FUND_STATE_COLUMNS[2:]


# ------------------------------------------------------------------ a model change stays pending
def test_a_model_change_stays_pending_across_a_superseded_and_a_rejected_proposal():
    seed = seed_state(JAN[2], model((JAN[2], {"EQ": 0.6, "BD": 0.4})).assign(fund_id="F"))
    first, fund, state = night(JAN[3], seed)
    assert fund["trigger"] == "model_change" and fund["status"] == "proposed"
    assert state["model_change_since"] == pd.Timestamp(JAN[3])
    # Nobody approves it (the 6th supersedes it), then the 6th's is rejected: nothing approved
    # reaches the state, and the fund keeps the trigger every night.
    second, fund, state = night(JAN[6], first.fund_state)
    assert fund["trigger"] == "model_change" and fund["status"] == "proposed"
    assert float(fund["max_abs_drift"]) == pytest.approx(0.2)
    _third, fund, state = night(JAN[7], second.fund_state)
    assert fund["trigger"] == "model_change" and state["model_change_since"] == pd.Timestamp(JAN[3])


def test_a_pending_model_change_ends_when_its_proposal_is_executed():
    seed = seed_state(JAN[2], model((JAN[2], {"EQ": 0.6, "BD": 0.4})).assign(fund_id="F"))
    first, _, _ = night(JAN[3], seed)
    approved = approved_from(first, JAN[3])
    # The 6th: approved, not executed yet: blocked (the pending change waits with it).
    second, fund, state = night(JAN[6], first.fund_state, approved=approved)
    assert fund["status"] == "blocked" and state["awaiting_proposal_id"] == approved["proposal_id"].iloc[0]
    assert pd.notna(state["model_change_since"])
    # The 7th: executions.csv reports both orders filled, and the positions moved with them.
    _third, fund, state = night(JAN[7], second.fund_state, positions=after_trades(approved), approved=approved,
                               executions=executions(approved))
    assert pd.isna(state["model_change_since"]) and pd.isna(state["awaiting_proposal_id"])
    assert (state["closed_outcome"], state["closed_by"]) == ("executed", "file")
    assert fund["status"] == "in_band" and pd.isna(fund["trigger"])
    assert "executed (executions.csv)" in fund["state_note"]


def test_a_pending_model_change_ends_when_the_holdings_are_within_bands_of_the_new_targets():
    seed = seed_state(JAN[2], model((JAN[2], {"EQ": 0.6, "BD": 0.4})).assign(fund_id="F"))
    first, _, _ = night(JAN[3], seed)
    # Market moves (or another route) bring the book to 42/58: within the 5 pp band of 40/60.
    moved = pd.DataFrame({"fund_id": "F", "security_id": ["EQ", "BD"], "quantity": [420.0, 580.0]})
    _, fund, state = night(JAN[6], first.fund_state, positions=moved)
    assert pd.isna(state["model_change_since"]) and fund["status"] == "in_band"


def test_a_fund_blocked_by_validation_on_the_change_night_trades_the_change_once_it_can():
    seed = seed_state(JAN[2], model((JAN[2], {"EQ": 0.6, "BD": 0.4})).assign(fund_id="F"))
    blocked = pd.DataFrame({"fund_id": ["F"], "blocked_reason": ["positions.csv row 2: quantity is not a number"]})
    first, fund, state = night(JAN[3], seed, blocked=blocked)
    assert fund["status"] == "blocked" and state["targets_key"] == seed.loc[0, "targets_key"]   # kept
    _, fund, state = night(JAN[6], first.fund_state)
    assert fund["trigger"] == "model_change" and fund["status"] == "proposed"


# ------------------------------------------------------------------ awaiting execution
@pytest.fixture
def approved_night():
    """Night of the 3rd: F proposes (threshold fund 70/30 against 60/40); approved."""
    funds = funds_frame({"fund_id": "F", "model_id": "M", "execution_expiry_days": 3})
    drifted = pd.DataFrame({"fund_id": "F", "security_id": ["EQ", "BD"], "quantity": [700.0, 300.0]})
    steady = model((JAN[2], {"EQ": 0.6, "BD": 0.4}))

    def run(as_of, previous, positions=drifted, **extra):
        _, _, prices, cash = book("F", {"EQ": (700, 100, 0.6), "BD": (300, 100, 0.4)})
        decision = decide_night(as_of, NightInputs(prices=prices, positions=positions, cash=cash, funds=funds,
                                                   targets=NO_TARGETS, model_targets=steady,
                                                   previous_state=previous, **extra))
        return decision, decision.summary.set_index("fund_id").loc["F"], decision.fund_state.set_index(
            "fund_id").loc["F"]

    first, fund, _ = run(JAN[3], None)
    assert fund["status"] == "proposed"
    return run, first, approved_from(first, JAN[3])


def test_an_approval_blocks_its_fund_with_the_proposal_named_until_executions_report_every_order(approved_night):
    run, first, approved = approved_night
    pid = approved["proposal_id"].iloc[0]
    second, fund, state = run(JAN[6], first.fund_state, approved=approved)
    assert fund["status"] == "blocked" and f"approved proposal {pid} (2014-01-03)" in fund["blocked_reason"]
    assert "expires on 2014-01-08" in fund["blocked_reason"]       # 3 business days after the 3rd
    assert state["awaiting_expires_on"] == pd.Timestamp(JAN[8])
    # The 7th: only the EQ sell is reported: still waiting.
    partial = executions(approved, only=["EQ"])
    third, fund, state = run(JAN[7], second.fund_state, approved=approved, executions=partial)
    assert fund["status"] == "blocked" and state["awaiting_proposal_id"] == pid
    # The 8th: the BD buy too (the warehouse returns the 7th's rows with tonight's): done.
    both = pd.concat([partial, executions(approved, only=["BD"])], ignore_index=True)
    _, fund, state = run(JAN[8], third.fund_state, approved=approved, executions=both)
    assert fund["status"] == "proposed"          # the book still drifts (positions unchanged): proposes again
    assert (state["closed_proposal_id"], state["closed_outcome"], state["closed_by"]) == (pid, "executed", "file")


def test_a_later_dates_positions_show_the_trades_done(approved_night):
    run, first, approved = approved_night
    decision, fund, state = run(JAN[6], first.fund_state, positions=after_trades(approved), approved=approved)
    assert fund["status"] == "in_band" and state["closed_by"] == "positions"
    assert sorted(decision.executed_by_positions["security_id"]) == ["BD", "EQ"]
    assert set(decision.executed_by_positions["source"]) == {"positions"}
    # The next night the closed approval is not awaited again, though the warehouse still lists it.
    _, fund, state = run(JAN[7], decision.fund_state, positions=after_trades(approved), approved=approved)
    assert fund["status"] == "in_band" and pd.isna(state["awaiting_proposal_id"])


def test_an_operators_word_ends_the_wait_and_cancelled_orders_do_too(approved_night):
    run, first, approved = approved_night
    _, fund, state = run(JAN[6], first.fund_state, approved=approved,
                         executions=executions(approved, source="operator"))
    assert fund["status"] == "proposed" and state["closed_by"] == "operator"
    _, fund, state = run(JAN[6], first.fund_state, approved=approved,
                         executions=executions(approved, status="cancelled", source="operator"))
    assert fund["status"] == "proposed" and state["closed_outcome"] == "cancelled"


def test_an_approval_never_executed_expires_after_n_business_days_with_the_reason_shown(approved_night):
    run, first, approved = approved_night
    state = first.fund_state
    for day in (JAN[6], JAN[7]):
        decision, fund, _ = run(day, state, approved=approved)
        assert fund["status"] == "blocked"
        state = decision.fund_state
    _, fund, row = run(JAN[8], state, approved=approved)      # the 3rd business day after the 3rd
    assert fund["status"] == "proposed"                      # proposes again
    assert (row["closed_outcome"], row["closed_by"]) == ("expired", "expiry")
    assert "expired unexecuted after 3 business days" in fund["state_note"]


def test_the_expiry_counts_business_days_of_the_funds_calendar():
    start = pd.Series(pd.to_datetime(["2014-01-03", "2014-12-23"]))
    got = expiry_dates(start, pd.Series([DEFAULT_EXECUTION_EXPIRY_DAYS, 2]), pd.Series(["XNYS", "XNYS"]))
    # 5 business days after Friday the 3rd; 2 after 23 December skip Christmas.
    assert list(got) == [pd.Timestamp("2014-01-10"), pd.Timestamp("2014-12-26")]
