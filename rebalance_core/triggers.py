"""Triggers: why a fund trades tonight, as one ordered registry.

``TRIGGERS`` lists every trigger in precedence order. Each is a name (the vocabulary of
``rebalance_core.schema``), a rule and what it overrides. A rule is a pure, vectorized
function of a ``TriggerContext`` (tonight's frames and the facts other modules computed)
returning the ids of the funds it fires for. ``run_triggers`` walks the registry once: a
trigger that fires sets a fund's trigger when the fund has none yet, or when the one it
has is among those the trigger ``overrides`` (``ANY``: whatever came before).

Adding a trigger: its name in ``schema.py``, its rule here (or in the module that knows
the facts, taking the context), one line in ``TRIGGERS`` at its place, and its tests
(docs/development/architecture.md, "Add a trigger").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from rebalance_core.calendar import DEFAULT_CALENDAR, period_starts
from rebalance_core.restrictions import funds_holding_excluded
from rebalance_core.schema import (
    CASH,
    TRIGGER_CALENDAR,
    TRIGGER_CASH_FLOW,
    TRIGGER_INDEX_EVENT,
    TRIGGER_MODEL_CHANGE,
    TRIGGER_RESTRICTION,
    TRIGGER_TAX,
    TRIGGER_THRESHOLD,
    TRIGGER_TRACKING,
    WEIGHT_EPS,
)

ANY = None  # ``overrides=ANY``: the trigger replaces whatever an earlier one set
_EMPTY = pd.Index([], name="fund_id")


@dataclass(frozen=True)
class TriggerContext:
    """What the rules read: tonight's frames for the funds decided, and the facts the
    night computed before resolving triggers (each optional, so a rule can be run alone)."""

    as_of: dt.date
    funds: pd.DataFrame                        # one row per fund, presets applied
    summary: pd.DataFrame                      # drift.summarize_funds: nav, cash, breached
    drift: pd.DataFrame | None = None          # drift.DRIFT_COLUMNS
    flows: pd.DataFrame | None = None          # fund_id, amount (base currency)
    positions: pd.DataFrame | None = None      # after the day's in-kind settlement
    restrictions: pd.DataFrame | None = None   # restrictions.clean_restrictions
    model_change: object = ()                  # fund_state: targets changed, not yet reached
    tracking: pd.DataFrame | None = None       # tracking.compute_tracking
    index_event: object = ()                   # index_events.night_targets: the fund's eve
    tax_funds: object = ()                     # harvest.plan_tax_trades: funds with a tax trade

    @cached_property
    def on_calendar(self) -> pd.Series:
        """Per fund row: tonight is the first trading day of its ``frequency`` period."""
        funds = self.funds
        calendars = funds["calendar"] if "calendar" in funds else pd.Series(DEFAULT_CALENDAR, index=funds.index)
        calendars = calendars.fillna(DEFAULT_CALENDAR)
        # One calendar lookup per calendar, however many funds share it; then a join.
        starts = pd.DataFrame([(cal, freq, due) for cal in calendars.unique()
                               for freq, due in period_starts(self.as_of, cal).items()],
                              columns=["calendar", "frequency", "due"]).set_index(["calendar", "frequency"])["due"]
        keys = pd.MultiIndex.from_arrays([calendars, funds["frequency"].fillna("")])
        return pd.Series(starts.reindex(keys).fillna(False).to_numpy(dtype=bool), index=funds.index)

    @cached_property
    def breached(self) -> pd.Series:
        """Per fund row: a holding (or class) is outside its band."""
        breached = self.summary.set_index("fund_id")["breached"]
        return self.funds["fund_id"].map(breached).fillna(False).astype(bool)


Rule = Callable[[TriggerContext], "pd.Index | pd.Series | np.ndarray"]


@dataclass(frozen=True)
class Trigger:
    name: str                                  # schema.TRIGGER_*: the value stored in trigger columns
    rule: Rule                                 # the fund ids it fires for
    overrides: tuple[str, ...] | None = ()     # earlier triggers it replaces; (): none, ANY: all


def calendar_due(ctx: TriggerContext) -> pd.Series:
    """``calendar`` policy: the first trading day of each ``frequency`` period."""
    return ctx.funds.loc[((ctx.funds["policy"] == "calendar") & ctx.on_calendar).to_numpy(), "fund_id"]


def band_breached(ctx: TriggerContext) -> pd.Series:
    """``threshold`` policy: any holding breaches; ``hybrid``: a breach seen on a calendar
    date (reported as ``threshold``, since the bands decided it)."""
    policy = ctx.funds["policy"]
    fires = ((policy == "threshold") | ((policy == "hybrid") & ctx.on_calendar)) & ctx.breached
    return ctx.funds.loc[fires.to_numpy(), "fund_id"]


def flow_per_fund(flows: pd.DataFrame | None, fund_ids) -> pd.Series:
    """Net pending subscription (+) / redemption (−) per fund in base currency (0 when none)."""
    index = pd.Index(fund_ids)
    if flows is None or flows.empty:
        return pd.Series(0.0, index=index)
    return flows.groupby("fund_id")["amount"].sum().reindex(index).fillna(0.0)


def flow_not_absorbed(ctx: TriggerContext) -> pd.Index:
    """Funds that cannot absorb their pending flow within their bands.

    After a flow, NAV and cash move by its amount and every weight with them. A fund whose
    holdings all stay inside their bands, and whose cash still covers its buffer, absorbs it
    and trades nothing; otherwise it trades the flow (trigger ``cash_flow``).
    """
    state = ctx.summary.set_index("fund_id")[["nav", "cash"]]
    flow = flow_per_fund(ctx.flows, state.index)
    if not (flow != 0).any():
        return _EMPTY
    buffer = (ctx.funds.drop_duplicates("fund_id").set_index("fund_id")["cash_buffer"]
              .reindex(state.index).fillna(0.0))
    nav_after = state["nav"] + flow
    cash_after = state["cash"] + flow
    drift = ctx.drift
    rows = drift[(drift["security_id"] != CASH) & drift["fund_id"].map(flow != 0).fillna(False).astype(bool)]
    weight_after = rows["market_value"] / rows["fund_id"].map(nav_after)
    tolerance = rows["band_upper"] - rows["target_weight"]
    outside = (weight_after - rows["target_weight"]).abs() > (tolerance + WEIGHT_EPS).fillna(np.inf)
    breach_after = (outside | ((rows["target_weight"] <= 0) & (rows["quantity"] > 0))).groupby(rows["fund_id"]).any()
    cannot_absorb = (flow != 0) & (breach_after.reindex(state.index).fillna(False).astype(bool)
                                   | (cash_after < buffer * nav_after - 1e-6))
    return state.index[cannot_absorb.to_numpy()]


def targets_changed(ctx: TriggerContext) -> pd.Index:
    """The fund's targets differ from its previous state's, not yet reached (fund_state)."""
    return ctx.model_change


def over_tracking_limit(ctx: TriggerContext) -> pd.Series:
    """The fund's ex-ante tracking error is above its max_tracking_error."""
    tracking = ctx.tracking
    if tracking is None or tracking.empty:
        return _EMPTY
    te = pd.to_numeric(tracking["ex_ante_tracking_error"], errors="coerce")
    limit = pd.to_numeric(tracking["max_tracking_error"], errors="coerce")
    return tracking.loc[(te > limit).to_numpy(), "fund_id"]


def index_eve(ctx: TriggerContext) -> pd.Index:
    """An index_tracking fund on the eve of an announced model version (index_events)."""
    return ctx.index_event


def holds_excluded(ctx: TriggerContext) -> pd.Index:
    """The fund holds a security its restrictions exclude."""
    if ctx.positions is None:
        return _EMPTY
    return funds_holding_excluded(ctx.positions, ctx.restrictions)


def tax_trades_planned(ctx: TriggerContext) -> pd.Index:
    """A harvest or a swap back is planned for the fund tonight (harvest.plan_tax_trades)."""
    return ctx.tax_funds


# Precedence, first to last. calendar/threshold/cash_flow follow the fund's policy;
# model_change and index_event take the fund to its new targets whatever it had; tracking
# goes all the way to target too, which covers a policy trigger, but leaves a model change
# (which does the same, and says why); restriction and tax only when nothing else trades.
TRIGGERS: tuple[Trigger, ...] = (
    Trigger(TRIGGER_CALENDAR, calendar_due),
    Trigger(TRIGGER_THRESHOLD, band_breached),
    Trigger(TRIGGER_CASH_FLOW, flow_not_absorbed),
    Trigger(TRIGGER_MODEL_CHANGE, targets_changed, overrides=ANY),
    Trigger(TRIGGER_TRACKING, over_tracking_limit, overrides=(TRIGGER_CALENDAR, TRIGGER_THRESHOLD, TRIGGER_CASH_FLOW)),
    Trigger(TRIGGER_INDEX_EVENT, index_eve, overrides=ANY),
    Trigger(TRIGGER_RESTRICTION, holds_excluded),
    Trigger(TRIGGER_TAX, tax_trades_planned),
)


def run_triggers(ctx: TriggerContext, registry: tuple[Trigger, ...] = TRIGGERS,
                 triggers: pd.Series | None = None) -> pd.Series:
    """Trigger per fund (index fund_id, None: none), the registry applied in order,
    starting from ``triggers`` (default: no fund has one)."""
    if triggers is None:
        triggers = pd.Series(np.full(len(ctx.funds), None, dtype=object), index=ctx.funds["fund_id"].to_numpy(),
                             name="trigger", dtype="object")
    for trigger in registry:
        fires = triggers.index.isin(trigger.rule(ctx))
        if not fires.any():
            continue
        if trigger.overrides is ANY:
            free = np.ones(len(triggers), dtype=bool)
        else:
            free = (triggers.isna() | triggers.isin(trigger.overrides)).to_numpy()
        # Assigned in numpy: Series.where would turn the other funds' None into NaN.
        values = triggers.to_numpy(dtype=object, copy=True)
        values[fires & free] = trigger.name
        triggers = pd.Series(values, index=triggers.index, name=triggers.name, dtype="object")
    return triggers


def _registered(*names: str) -> tuple[Trigger, ...]:
    return tuple(trigger for trigger in TRIGGERS if trigger.name in names)


def resolve_triggers(as_of: dt.date, funds: pd.DataFrame, summary: pd.DataFrame) -> pd.Series:
    """The policy triggers alone (``calendar``, ``threshold`` or None per fund)."""
    return run_triggers(TriggerContext(as_of, funds, summary), _registered(TRIGGER_CALENDAR, TRIGGER_THRESHOLD))


def resolve_flow_triggers(drift: pd.DataFrame, summary: pd.DataFrame, funds: pd.DataFrame,
                          flows: pd.DataFrame | None, triggers: pd.Series) -> pd.Series:
    """``triggers`` with ``cash_flow`` added for the funds without one that cannot absorb
    their flow."""
    ctx = TriggerContext(dt.date.min, funds, summary, drift=drift, flows=flows)
    return run_triggers(ctx, _registered(TRIGGER_CASH_FLOW), triggers)
