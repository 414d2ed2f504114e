"""The trigger registry (rebalance_core.triggers): precedence and what each trigger overrides,
on hand-built facts (the rules themselves are tested through decide_night elsewhere)."""

from __future__ import annotations

import pandas as pd
from frames import AS_OF, funds_frame

from rebalance_core import schema
from rebalance_core.triggers import ANY, TRIGGERS, Trigger, TriggerContext, run_triggers


def _context(breached: dict[str, bool], **facts) -> TriggerContext:
    funds = funds_frame(*({"fund_id": f, "policy": "threshold"} for f in breached))
    summary = pd.DataFrame({"fund_id": list(breached), "breached": list(breached.values()),
                            "nav": 100.0, "cash": 0.0})
    return TriggerContext(AS_OF, funds, summary, **facts)


def _tracking(*over: str) -> pd.DataFrame:
    return pd.DataFrame({"fund_id": list(over), "ex_ante_tracking_error": 0.05, "max_tracking_error": 0.01})


def test_the_registry_lists_every_trigger_once_in_the_documented_precedence():
    assert [t.name for t in TRIGGERS] == [
        schema.TRIGGER_CALENDAR, schema.TRIGGER_THRESHOLD, schema.TRIGGER_CASH_FLOW, schema.TRIGGER_MODEL_CHANGE,
        schema.TRIGGER_TRACKING, schema.TRIGGER_INDEX_EVENT, schema.TRIGGER_RESTRICTION, schema.TRIGGER_TAX]


def test_a_fund_without_a_fact_that_fires_has_no_trigger_and_stays_none():
    triggers = run_triggers(_context({"A": False, "B": True}))
    assert triggers["A"] is None and triggers["B"] == schema.TRIGGER_THRESHOLD


def test_tracking_replaces_a_policy_trigger_but_never_a_model_change():
    ctx = _context({"A": True, "B": True, "C": False}, model_change=pd.Index(["B"]), tracking=_tracking("A", "B", "C"))
    triggers = run_triggers(ctx)
    assert triggers.to_dict() == {"A": schema.TRIGGER_TRACKING, "B": schema.TRIGGER_MODEL_CHANGE, "C": schema.TRIGGER_TRACKING}


def test_an_index_event_replaces_whatever_came_before():
    ctx = _context({"A": True, "B": False}, model_change=pd.Index(["A"]), tracking=_tracking("B"),
                   index_event=pd.Index(["A", "B"]))
    assert run_triggers(ctx).to_dict() == {"A": schema.TRIGGER_INDEX_EVENT, "B": schema.TRIGGER_INDEX_EVENT}


def test_tax_only_for_a_fund_nothing_else_makes_trade():
    ctx = _context({"A": True, "B": False}, tax_funds=pd.Index(["A", "B"]))
    assert run_triggers(ctx).to_dict() == {"A": schema.TRIGGER_THRESHOLD, "B": schema.TRIGGER_TAX}


def test_a_new_trigger_is_one_registry_line_at_its_place():
    late = Trigger(schema.TRIGGER_RESTRICTION, lambda ctx: pd.Index(["A", "B"]))
    overriding = Trigger(schema.TRIGGER_RESTRICTION, lambda ctx: pd.Index(["A"]), overrides=ANY)
    ctx = _context({"A": True, "B": False})
    base = tuple(t for t in TRIGGERS if t.name == schema.TRIGGER_THRESHOLD)
    assert run_triggers(ctx, (*base, late)).to_dict() == {"A": schema.TRIGGER_THRESHOLD, "B": schema.TRIGGER_RESTRICTION}
    assert run_triggers(ctx, (*base, overriding)).to_dict() == {"A": schema.TRIGGER_RESTRICTION, "B": None}
