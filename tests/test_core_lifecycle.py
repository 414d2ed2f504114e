"""The proposal lifecycle (rebalance_core.lifecycle), the one harvest-pair rule
(rebalance_core.harvest.open_harvests), compliance on holdings
(rebalance_core.compliance.judge_holdings) and the rejection memory: pure, no warehouse."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from rebalance_core import lifecycle as lc
from rebalance_core.approval import auto_approvable
from rebalance_core.compliance import holdings_exceptions, judge_holdings
from rebalance_core.harvest import open_harvests
from rebalance_core.night import NightInputs, decide_night
from rebalance_core.schema import FALSE_WORDS, TRUE_WORDS, WASH_SALE_DAYS
from rebalance_core.tax_lots import recent_loss_sales

D = dt.date(2014, 3, 3)

# Every (state, event) that the lifecycle allows, and where it goes (facts chosen so it goes
# the one way: gross 10 with no threshold, a different second approver).
LEGAL = {
    (lc.PENDING, lc.APPROVE): lc.APPROVED,
    (lc.PENDING, lc.REJECT): lc.REJECTED,
    (lc.PENDING, lc.AUTO_APPROVE): lc.APPROVED,
    (lc.PENDING, lc.SUPERSEDE): lc.SUPERSEDED,
    (lc.PENDING_SECOND, lc.APPROVE): lc.APPROVED,
    (lc.PENDING_SECOND, lc.REJECT): lc.REJECTED,
    (lc.PENDING_SECOND, lc.SUPERSEDE): lc.SUPERSEDED,
    (lc.APPROVED, lc.EXECUTE): lc.EXECUTED,
    (lc.APPROVED, lc.EXPIRE): lc.EXPIRED,
}
FACTS = {"by": "bob", "first_approved_by": "alice", "gross": Decimal("10"), "threshold": None}


@pytest.mark.parametrize("state", lc.STATES)
@pytest.mark.parametrize("event", lc.EVENTS)
def test_every_transition_is_legal_or_refused(state, event):
    if (state, event) in LEGAL:
        step = lc.transition(state, event, **FACTS)
        assert (step.source, step.event, step.target) == (state, event, LEGAL[(state, event)])
    else:
        with pytest.raises(lc.IllegalTransition, match=f"{state} cannot take"):
            lc.transition(state, event, **FACTS)


def test_final_states_take_no_event_and_the_table_is_the_legal_set():
    for state in lc.FINAL:
        assert lc.legal_events(state) == ()
    assert {(t.source, t.event) for t in lc.TRANSITIONS} == set(LEGAL)
    assert lc.SUPERSEDABLE == (lc.PENDING, lc.PENDING_SECOND)
    assert lc.RERUN_REPLACEABLE == (lc.PENDING,)
    with pytest.raises(lc.IllegalTransition):
        lc.transition(lc.PENDING, "approve_twice")


def test_four_eyes_at_the_boundary_compares_money_exactly():
    threshold = Decimal("1000000.000000")
    # Exactly equal is not above: one approval is enough.
    assert lc.transition(lc.PENDING, lc.APPROVE, by="a", gross=Decimal("1000000"), threshold=threshold).target \
        == lc.APPROVED
    # One micro-unit above: the first of two.
    step = lc.transition(lc.PENDING, lc.APPROVE, by="a", gross=Decimal("1000000.000001"), threshold=threshold)
    assert (step.target, step.audit) == (lc.PENDING_SECOND, "first_approval")
    # Floats are read as the warehouse stores them (6 decimals, half away from zero): a sum
    # of floats that is 0.30000000000000004 is 0.300000, not above a 0.3 threshold.
    assert not lc.needs_second_approval(0.1 + 0.2, 0.3)
    assert lc.needs_second_approval(Decimal("0.3000005"), Decimal("0.3"))     # rounds up to 0.300001
    assert not lc.needs_second_approval(Decimal("0.3000004"), Decimal("0.3"))
    assert not lc.needs_second_approval(Decimal("5e9"), None)                 # no threshold
    assert not lc.needs_second_approval(1.0, float("nan"))                    # not a number: none
    assert lc.gross_notional([0.1, 0.2, 0.3]) == Decimal("0.600000")


def test_the_second_approval_comes_from_someone_else_and_a_rejection_ends_either_stage():
    with pytest.raises(lc.FourEyesViolation, match="other than Alice"):
        lc.transition(lc.PENDING_SECOND, lc.APPROVE, by=" alice ", first_approved_by="Alice")
    assert lc.transition(lc.PENDING_SECOND, lc.APPROVE, by="bob", first_approved_by="alice").target == lc.APPROVED
    # The first approver may still reject (a rejection needs no second person).
    assert lc.transition(lc.PENDING_SECOND, lc.REJECT, by="alice", first_approved_by="alice").target == lc.REJECTED
    for state in (lc.REJECTED, lc.APPROVED):
        with pytest.raises(lc.IllegalTransition):
            lc.transition(state, lc.APPROVE, by="carol")
    with pytest.raises(lc.ReservedName, match="reserved"):
        lc.transition(lc.PENDING, lc.APPROVE, by="rule:me")


def test_a_twin_approval_is_refused_for_people_and_the_rule_alike():
    for state, event in ((lc.PENDING, lc.APPROVE), (lc.PENDING_SECOND, lc.APPROVE), (lc.PENDING, lc.AUTO_APPROVE)):
        with pytest.raises(lc.TwinApproval, match="same drift twice"):
            lc.transition(state, event, by="bob", first_approved_by="alice", twin=True)
    assert lc.TWIN_STATES == (lc.APPROVED, lc.PENDING_SECOND)
    # A rejection is never a twin's business.
    assert lc.transition(lc.PENDING, lc.REJECT, by="bob", twin=True).target == lc.REJECTED


def test_no_rule_stands_in_for_two_people():
    with pytest.raises(lc.FourEyesViolation, match="no rule"):
        lc.transition(lc.PENDING, lc.AUTO_APPROVE, gross=Decimal("100.01"), threshold=Decimal("100"))
    assert lc.transition(lc.PENDING, lc.AUTO_APPROVE, gross=Decimal("100"), threshold=Decimal("100")).target \
        == lc.APPROVED


def test_executed_and_expired_are_stored_beside_the_approved_status():
    assert lc.stored(lc.EXECUTED) == (lc.APPROVED, lc.EXECUTED)
    assert lc.stored(lc.EXPIRED) == (lc.APPROVED, lc.EXPIRED)
    assert lc.stored(lc.PENDING_SECOND) == (lc.PENDING_SECOND, None)
    for state in lc.STATES:
        assert lc.state_of(*lc.stored(state)) == state
    with pytest.raises(ValueError, match="cannot be"):
        lc.state_of(lc.REJECTED, lc.EXECUTED)
    with pytest.raises(ValueError, match="unknown proposal status"):
        lc.state_of("executed")   # never a status value


def test_the_rule_and_the_lifecycle_agree_on_the_four_eyes_boundary():
    """auto_approvable's four-eyes test is the lifecycle's: equal passes, a cent above waits."""
    funds = pd.DataFrame({"fund_id": ["A", "B"], "auto_approve_max_turnover": [1.0, 1.0],
                          "second_approval_notional": [300.0, 300.0]})
    proposals = pd.DataFrame({"proposal_id": ["pa", "pb"], "fund_id": ["A", "B"], "nav": [1000.0, 1000.0],
                              "turnover": [0.15, 0.15], "est_cost": [0.0, 0.0]})
    trades = pd.DataFrame({"proposal_id": ["pa", "pa", "pb", "pb"],
                           "notional": [100.1, 199.9, 100.1, 199.91]})   # 300.0 (float noise) and 300.01
    assert list(auto_approvable(proposals, trades, funds)) == [True, False]


# ------------------------------------------------------------------ rules written once
def test_one_vocabulary_and_one_window():
    from rebalance_core import harvest, tax_lots
    from rebalance_pipeline import formatting, history

    assert harvest.WASH_SALE_DAYS is tax_lots.WASH_SALE_DAYS is history.WASH_SALE_DAYS is WASH_SALE_DAYS
    assert {"yes", "true", "1"} <= TRUE_WORDS and {"no", "false", "0"} <= FALSE_WORDS
    assert not TRUE_WORDS & FALSE_WORDS
    assert formatting.yes_no("Y") == "yes" and formatting.yes_no("off") == formatting.BLANK


def test_is_blank_treats_every_nan_alike():
    import numpy as np

    from rebalance_pipeline import formatting

    for blank in (None, float("nan"), np.float64("nan"), Decimal("NaN"), pd.NA, pd.NaT):
        assert formatting.is_blank(blank)
    for value in (0, 0.0, Decimal("0"), "", "x", False, np.int64(1)):
        assert not formatting.is_blank(value)
    assert formatting.records(pd.DataFrame({"a": [np.nan, 1.5]})) == [{"a": None}, {"a": 1.5}]


def test_loss_sales_in_the_window_one_definition():
    trades = pd.DataFrame({
        "as_of_date": [D - dt.timedelta(days=d) for d in (1, 30, 31, 2, 3)],
        "fund_id": ["F"] * 5, "security_id": ["A", "B", "C", "D", "E"],
        "side": ["SELL", "SELL", "SELL", "SELL", "BUY"], "est_realized_gain": [-1.0, -5.0, -5.0, 2.0, -1.0]})
    assert recent_loss_sales(trades, D).values.tolist() == [["F", "A"], ["F", "B"]]


# ------------------------------------------------------------------ harvest pairs
def _trade(day, security, side, harvest_of, fund="F"):
    return {"as_of_date": day, "fund_id": fund, "security_id": security, "side": side, "harvest_of": harvest_of}


def test_open_harvests_latest_trade_naming_the_security_decides():
    d1, d2, d3 = D, D + dt.timedelta(days=1), D + dt.timedelta(days=40)
    history = pd.DataFrame([
        _trade(d1, "SUB", "BUY", "A"),                  # harvest of A into SUB: open
        _trade(d1, "SUB2", "BUY", "B"), _trade(d3, "SUB2", "SELL", "B"),   # harvested, swapped back: closed
        _trade(d2, "SUBC", "SELL", "C"), _trade(d2, "SUBC2", "BUY", "C"),  # same night: the buy wins
        _trade(d1, "X", "BUY", None),                   # names nothing
        _trade(d1, "SUB", "BUY", "A", fund="G"),
    ])
    pairs = open_harvests(history).sort_values(["fund_id", "security_id"]).values.tolist()
    assert pairs == [["F", "A", "SUB", d1], ["F", "C", "SUBC2", d2], ["G", "A", "SUB", d1]]
    assert open_harvests(None).empty and open_harvests(history.iloc[:0]).empty


def test_the_replay_rolls_pairs_with_the_nightly_rule():
    """Day by day (open_before + the day's trades) equals the whole history at once."""
    d1, d2, d3 = D, D + dt.timedelta(days=1), D + dt.timedelta(days=40)
    days = {d1: [_trade(d1, "SUB", "BUY", "A"), _trade(d1, "SUB2", "BUY", "B")],
            d2: [_trade(d2, "SUBC", "BUY", "C")],
            d3: [_trade(d3, "SUB2", "SELL", "B"), _trade(d3, "SUB3", "BUY", "A")]}
    pairs = None
    for day in sorted(days):
        pairs = open_harvests(pd.DataFrame(days[day]), open_before=pairs)
    whole = open_harvests(pd.DataFrame([t for day in days.values() for t in day]))
    key = ["fund_id", "security_id"]
    assert pairs.sort_values(key).values.tolist() == whole.sort_values(key).values.tolist()
    assert sorted(pairs["substitute_id"]) == ["SUB3", "SUBC"]


# ------------------------------------------------------------------ compliance on holdings
def _ric_night(issuer_weight: float = 0.34) -> NightInputs:
    """A RIC fund on target (in band) holding ``issuer_weight`` in issuer X (two securities)."""
    x = issuer_weight / 2
    rest = (1 - issuer_weight) / 4
    weights = {"X1": x, "X2": x, "B": rest, "C": rest, "E": rest, "G": rest}
    funds = pd.DataFrame([{"fund_id": "RIC", "name": "r", "base_currency": "USD", "policy": "threshold",
                           "frequency": "daily", "abs_band": 0.05, "rel_band": None, "rebalance_to": "target",
                           "min_trade_notional": 0, "cash_buffer": 0, "allow_fractional": True, "compliance": "ric"},
                          {"fund_id": "PLAIN", "name": "p", "base_currency": "USD", "policy": "threshold",
                           "frequency": "daily", "abs_band": 0.05, "rel_band": None, "rebalance_to": "target",
                           "min_trade_notional": 0, "cash_buffer": 0, "allow_fractional": True,
                           "compliance": None}])
    prices = pd.DataFrame({"security_id": list(weights), "close_price": 100.0, "currency": "USD"})
    positions = pd.concat([pd.DataFrame({"fund_id": f, "security_id": list(weights),
                                         "quantity": [w * 10_000 for w in weights.values()]})
                           for f in ("RIC", "PLAIN")], ignore_index=True)
    targets = pd.concat([pd.DataFrame({"fund_id": f, "security_id": list(weights),
                                       "target_weight": list(weights.values())}) for f in ("RIC", "PLAIN")],
                        ignore_index=True)
    securities = pd.DataFrame({"security_id": list(weights), "lot_size": 1, "asset_class": "eq", "tradable": True,
                               "issuer": ["X", "X", None, None, None, None]})
    return NightInputs(prices=prices, positions=positions,
                       cash=pd.DataFrame({"fund_id": ["RIC", "PLAIN"], "currency": "USD", "amount": 0.0}),
                       funds=funds, targets=targets, securities=securities)


def test_a_ric_fund_in_band_over_25_percent_in_one_issuer_fails_on_its_holdings():
    decision = decide_night(D, _ric_night(0.34))
    assert decision.summary.set_index("fund_id").loc["RIC", "status"] == "in_band"
    holdings = decision.compliance[decision.compliance["proposal_id"].isna()].set_index("rule")
    assert set(holdings.index) == {"ric_single_issuer_25", "ric_5_50"}
    assert set(decision.compliance["fund_id"]) == {"RIC"}         # PLAIN has no compliance setting
    single = holdings.loc["ric_single_issuer_25"]
    assert float(single["before_value"]) == pytest.approx(0.34) == float(single["after_value"])
    assert not single["passed"] and single["action"] == "none" and "issuer X" in single["detail"]
    # X 34 % + B, C, E, G 16.5 % each: 100 % above 5 %, over the 50 % aggregate too.
    assert float(holdings.loc["ric_5_50", "before_value"]) == pytest.approx(1.0)
    assert set(holdings_exceptions(decision.compliance)["rule"]) == {"ric_single_issuer_25", "ric_5_50"}


def test_a_compliant_fund_passes_on_its_holdings_and_a_blocked_one_is_not_judged():
    inputs = _ric_night(0.20)
    securities = inputs.securities.assign(issuer=["X", "X", "Y", "Z", "V", "W"])
    weights = judge_holdings(D, decide_night(D, inputs).drift,
                             decide_night(D, inputs).summary, inputs.funds, securities)
    assert len(weights) == 2 and set(weights["fund_id"]) == {"RIC"}
    assert bool(weights.set_index("rule").loc["ric_single_issuer_25", "passed"])
    blocked = decide_night(D, NightInputs(**{**inputs.__dict__, "blocked": pd.DataFrame(
        {"fund_id": ["RIC"], "blocked_reason": ["prices.csv row 2: bad"]})}))
    assert blocked.compliance.empty


# ------------------------------------------------------------------ rejections remembered
def test_a_proposal_carries_the_latest_rejection_of_its_fund_and_trigger():
    proposals = pd.DataFrame({"proposal_id": ["F1-new", "F2-new", "F3-new"], "fund_id": ["F1", "F2", "F3"],
                              "trigger": ["threshold", "threshold", "calendar"]})
    at = pd.Timestamp("2014-03-03 15:00", tz="UTC")
    decisions = pd.DataFrame([
        {"fund_id": "F1", "trigger": "threshold", "proposal_id": "F1-old", "as_of_date": D, "status": "rejected",
         "reviewed_by": "ops.bob", "reviewed_at": at, "review_note": "wait for the flows"},
        {"fund_id": "F2", "trigger": "threshold", "proposal_id": "F2-old", "as_of_date": D, "status": "approved",
         "reviewed_by": "ops.bob", "reviewed_at": at, "review_note": None},
        {"fund_id": "F3", "trigger": "threshold", "proposal_id": "F3-old", "as_of_date": D, "status": "rejected",
         "reviewed_by": "ops.ann", "reviewed_at": at, "review_note": "no"},
    ])
    out = lc.rejection_hints(proposals, decisions).set_index("fund_id")
    assert out.loc["F1", "rejected_before_proposal_id"] == "F1-old"
    assert (out.loc["F1", "rejected_before_by"], out.loc["F1", "rejected_before_note"]) == ("ops.bob",
                                                                                             "wait for the flows")
    assert out.loc["F1", "rejected_before_at"] == at and out.loc["F1", "rejected_before_date"] == D
    assert out.loc["F2", "rejected_before_proposal_id"] is None   # its latest decision was an approval
    assert out.loc["F3", "rejected_before_proposal_id"] is None   # another trigger
    none = lc.rejection_hints(proposals, None)
    assert list(none.columns[-5:]) == lc.REJECTED_BEFORE_COLUMNS and none["rejected_before_by"].isna().all()


def test_only_an_approved_proposal_can_be_executed_or_expire():
    """``can`` answers from the transition table: what the CLI's `executed` and the desk's
    executions.csv accept (rebalance_pipeline.executions.NOT_APPROVED is its complement)."""
    from rebalance_pipeline.executions import NOT_APPROVED

    for event in (lc.EXECUTE, lc.EXPIRE):
        assert [s for s in lc.STATES if lc.can(s, event)] == [lc.APPROVED]
    assert set(NOT_APPROVED) == set(lc.STATUS_STATES) - {lc.APPROVED}
    assert lc.can(lc.PENDING, lc.APPROVE) and not lc.can(lc.REJECTED, lc.APPROVE)
