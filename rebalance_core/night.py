"""One night's decision for a set of funds: the single function every caller uses.

``decide_night(as_of, inputs)`` takes typed frames (the date's prices, positions, cash,
reference data in force, validation outcomes as blocked funds, and facts from the approved
history) and returns everything the night decides: drift rows, the fund summary with each
fund's status, proposals, trades and the tax lots their sells close. It reads and writes
nothing. The nightly run (whole, or one shard of funds at a time), the Airflow shard tasks
and ``rebalance simulate`` all call it, so a what-if replays exactly the nightly rules.

Rules decided here (and nowhere else):
- a fund blocked by validation, whose NAV cannot be computed, or whose approved proposal is
  not known to be executed (``awaiting execution``, ``rebalance_core.fund_state``) gets no
  proposal;
- a security without its own half spread takes its asset class's;
- a fund with a ``model_id`` takes the targets of that model's version in force on the date
  (``rebalance_core.models``); a fund whose targets differ from those of its previous
  state rebalances to them whatever its policy (trigger and trade reason ``model_change``),
  every night until a proposal to them is executed or its holdings are within bands of them;
- the fund state (``rebalance_core.fund_state``): what carries to the next night (targets in
  force, a pending model change, the approval awaited, compliance failing) is returned as
  ``fund_state``; nothing here reads the machine's clock;
- an ``index_tracking`` fund trades into a model version announced ahead at the close of
  the last trading day before it is effective (trigger and reason ``index_event``), and
  does not trade it again on the day it comes into force (``rebalance_core.index_events``);
- ETF primary market (``rebalance_core.baskets``): each fund with a creation unit gets its
  creation and redemption baskets; the day's cash creations and redemptions are flows, the
  in-kind ones settle into positions, cash and lots before drift (lowest-cost lots out);
- ``band_level = asset_class``: a fund's bands are judged on its classes' total weights
  (``fund_class_drift``, written for every fund) and its rebalance trades classes;
- restrictions (``rebalance_core.restrictions``): an excluded security's target goes to its
  substitute or the fund's other targets before drift is computed, a fund holding one sells
  it whatever its policy (trigger ``restriction``), and no trade breaks a no_buy / no_sell;
- tax-loss harvesting and the swap back (``rebalance_core.harvest``): tax trades join the
  proposal (trigger ``tax`` when nothing else makes the fund trade), an open harvest's
  pair shares the security's target and is judged as one holding, and a fund that avoids
  wash sales (``wash_sale_rule``) never proposes one;
- tracking (``rebalance_core.tracking``): a ``fund_tracking`` row for each fund on a model
  with an index level tonight, with shares outstanding, or with a ``max_tracking_error``; a
  fund whose ex-ante tracking error exceeds that limit rebalances to target (trigger and
  trade reason ``tracking``);
- compliance (``rebalance_core.compliance``): a fund with a ``compliance`` setting (``ric``,
  ``ucits``) has its holdings judged every night (``compliance_result`` rows with a null
  proposal_id) and each sized proposal judged on its issuers; a proposal that would break a
  rule is blocked, a fund already failing one keeps only the trades that do not worsen it;
- status: ``blocked`` (with the reason), ``proposed`` (with the proposal id) or ``in_band``;
- triggers (``rebalance_core.triggers``): one ordered registry, run once per night;
- ``auto_approve``: the proposals the fund's straight-through rule approves when the night is
  published (``rebalance_core.approval``);
- rejections remembered: a proposal carries the latest rejection of its fund and trigger
  (``rejected_before_*``, ``rebalance_core.lifecycle.rejection_hints``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rebalance_core.approval import auto_approvable, auto_approval_notes
from rebalance_core.baskets import BASKET_COLUMNS, IN_KIND_LOT_COLUMNS, PrimaryMarket, settle_primary_market
from rebalance_core.compliance import RESULT_COLUMNS as COMPLIANCE_COLUMNS
from rebalance_core.compliance import check_compliance, judge_holdings
from rebalance_core.drift import (
    CLASS_DRIFT_COLUMNS,
    apply_class_bands,
    compute_class_drift,
    compute_drift,
    summarize_funds,
)
from rebalance_core.fund_state import (
    EXECUTION_COLUMNS,
    FUND_STATE_COLUMNS,
    StateFacts,
    next_fund_state,
    with_compliance,
)
from rebalance_core.harvest import held_pairs, judge_pairs, plan_tax_trades, split_pair_targets, wash_rules
from rebalance_core.index_events import night_targets
from rebalance_core.lifecycle import rejection_hints
from rebalance_core.models import fund_models, isin_ids
from rebalance_core.night_types import NightDecision, NightInputs
from rebalance_core.proposals import apply_presets, propose
from rebalance_core.restrictions import apply_exclusions, clean_restrictions
from rebalance_core.schema import (
    CASH,
    REASON_TAX,
    STATUS_BLOCKED,
    STATUS_IN_BAND,
    STATUS_PROPOSED,
    WEIGHT_EPS,
)
from rebalance_core.tax_lots import LOT_COLUMNS, realize_gains, summarize_gains
from rebalance_core.tracking import TRACKING_COLUMNS, compute_tracking
from rebalance_core.triggers import TriggerContext, flow_per_fund, run_triggers

__all__ = ["NightDecision", "NightInputs", "decide_night", "with_auto_approval", "with_class_spreads"]

BLOCKED_COLUMNS = ["fund_id", "blocked_reason"]
UNVALUED_REASON = ("NAV cannot be computed (a holding has no usable price or fx rate, or the fund is worth "
                   "nothing)")


def decide_night(as_of: dt.date, inputs: NightInputs) -> NightDecision:
    """Drift, triggers, proposals and statuses of every fund in ``inputs.funds``.

    The steps, in order: the book (targets in force, the day's primary market settled),
    drift, the blocked funds and the state carried, the triggers (``rebalance_core.triggers``),
    the proposals with their compliance and tax, and the fund summary."""
    book = _open_book(as_of, inputs)
    measured = _measure_drift(as_of, inputs, book)
    blocked, carried = _blocked_funds(as_of, inputs, book, measured)
    market, summary, drift = book.market, measured.summary, measured.drift
    tracking = compute_tracking(as_of, book.funds, summary, drift, inputs.index_levels, inputs.fund_shares,
                                inputs.tracking_history, inputs.price_history, inputs.prices,
                                nav_per_share=market.nav_per_share)
    nav_after_flow = summary.set_index("fund_id")["nav"] + flow_per_fund(market.flows, summary["fund_id"]).to_numpy()
    plan = plan_tax_trades(as_of, book.funds, drift, nav_after_flow, market.tax_lots, inputs.prices, book.securities,
                           inputs.fx_rates, inputs.substitutes, book.restrictions, inputs.recent_buys,
                           inputs.recent_loss_sales, measured.pairs, pd.Index(blocked["fund_id"]))
    triggers = run_triggers(TriggerContext(
        as_of, book.funds, summary, drift=drift, flows=market.flows, positions=market.positions,
        restrictions=book.restrictions, model_change=pd.Index(carried.model_change), tracking=tracking,
        index_event=pd.Index(book.index_event), tax_funds=pd.Index(plan.funds)))
    proposals, trades, judged = _sized_proposals(as_of, inputs, book, measured, triggers, blocked, plan)
    blocked = pd.concat([blocked, judged.blocked], ignore_index=True) if len(judged.blocked) else blocked
    proposals, trades, lots = _with_taxes(as_of, inputs, book, drift, plan, proposals, trades)
    return _decision(as_of, inputs, book, measured, carried, _Outcome(
        triggers, blocked, proposals, trades, lots, tracking, judged.results))


@dataclass(frozen=True)
class _Book:
    """The night's reference data, and the book once the day's primary market settled."""

    funds: pd.DataFrame                 # presets applied, one row per fund
    securities: pd.DataFrame | None     # with their class's half spread where they have none
    restrictions: pd.DataFrame
    targets: pd.DataFrame               # in force tonight (own, model's, or the announced index version)
    index_event: object                 # fund ids on their index eve
    validation_blocked: object          # fund ids validation blocked
    market: PrimaryMarket


def _open_book(as_of: dt.date, inputs: NightInputs) -> _Book:
    funds = apply_presets(inputs.funds.drop_duplicates("fund_id"))
    securities = with_class_spreads(inputs.securities, inputs.asset_classes)
    # An index-tracking fund on its eve takes the announced version (index_events).
    targets, index_event = night_targets(as_of, funds, inputs.targets, inputs.model_targets)
    validation_blocked = inputs.blocked["fund_id"] if inputs.blocked is not None and len(inputs.blocked) else ()
    # The files hold the close before the day's AP orders settle in kind: settle them first.
    market = settle_primary_market(as_of, funds, targets, inputs.positions, inputs.prices, inputs.cash,
                                   inputs.fx_rates, securities, inputs.tax_lots, inputs.flows, inputs.creations,
                                   inputs.fund_shares, blocked_ids=validation_blocked)
    return _Book(funds, securities, clean_restrictions(inputs.restrictions), targets, index_event,
                 validation_blocked, market)


@dataclass(frozen=True)
class _Measured:
    drift: pd.DataFrame
    summary: pd.DataFrame
    class_drift: pd.DataFrame
    pairs: pd.DataFrame                 # open harvests still held (harvest.held_pairs)
    restriction_moves: pd.DataFrame     # (fund, security) whose target an exclusion raised


def _measure_drift(as_of: dt.date, inputs: NightInputs, book: _Book) -> _Measured:
    """Drift against what the fund may follow: exclusions moved, each open harvest's pair
    sharing its target; bands judged per class where the fund says so."""
    funds, securities, positions = book.funds, book.securities, book.market.positions
    followed = apply_exclusions(book.targets, book.restrictions)
    restriction_moves = _raised_targets(book.targets, followed, book.restrictions)
    pairs = held_pairs(inputs.open_harvests, positions)
    followed = split_pair_targets(followed, pairs, positions, inputs.prices, funds, inputs.fx_rates)
    drift = compute_drift(as_of, funds, followed, positions, inputs.prices, book.market.cash,
                          inputs.fx_rates, securities=securities, asset_class_bands=inputs.asset_classes)
    drift = judge_pairs(drift, pairs, funds)
    summary = summarize_funds(drift)
    class_drift = compute_class_drift(as_of, drift, funds, securities, inputs.asset_classes)
    drift, summary = apply_class_bands(drift, summary, class_drift, funds, securities)
    return _Measured(drift, summary, class_drift, pairs, restriction_moves)


def _blocked_funds(as_of: dt.date, inputs: NightInputs, book: _Book, measured: _Measured):
    """Funds that get no proposal (validation, no NAV, an approval awaiting execution), and
    the fund state carried to the next night."""
    summary = measured.summary
    blocked = _blocked_by_validation(inputs.blocked)
    # A fund whose NAV cannot be computed cannot be sized, whatever validation said.
    unvalued = summary.loc[summary["nav"].isna() & ~summary["fund_id"].isin(blocked["fund_id"]), "fund_id"]
    blocked = _add_blocked(blocked, unvalued, UNVALUED_REASON)
    carried = next_fund_state(as_of, inputs.previous_state, StateFacts(
        funds=book.funds, targets=book.targets, summary=summary, positions=book.market.positions,
        approved=inputs.approved, executions=inputs.executions,
        validation_blocked=pd.Index(book.validation_blocked), index_event=pd.Index(book.index_event)))
    waiting = carried.blocked
    waiting = waiting[waiting["fund_id"].isin(summary["fund_id"]) & ~waiting["fund_id"].isin(blocked["fund_id"])]
    blocked = pd.concat([blocked, waiting], ignore_index=True) if len(waiting) else blocked
    return blocked, carried


def _sized_proposals(as_of, inputs: NightInputs, book: _Book, measured: _Measured, triggers: pd.Series,
                     blocked: pd.DataFrame, plan):
    """Proposals and trades under every rule (restrictions, the tax plan's holds, wash
    sales), then judged for compliance."""
    funds, drift = book.funds, measured.drift
    rules = pd.concat([book.restrictions[["fund_id", "security_id", "rule"]], plan.hold,
                       wash_rules(as_of, funds, drift, book.market.tax_lots, inputs.recent_buys,
                                  inputs.recent_loss_sales)],
                      ignore_index=True)
    proposals, trades = propose(as_of, drift, measured.summary, funds, triggers, securities=book.securities,
                                blocked=blocked, flows=book.market.flows, class_drift=measured.class_drift,
                                restrictions=rules, restriction_moves=measured.restriction_moves,
                                fixed_trades=plan.trades)
    judged = check_compliance(as_of, drift, proposals, trades, funds, book.securities)
    return judged.proposals, judged.trades, judged


def _with_taxes(as_of, inputs: NightInputs, book: _Book, drift: pd.DataFrame, plan, proposals, trades):
    """The lots each sell closes (the tax plan's lot rule for its own trades), realized
    gains, wash sales and harvest totals per proposal."""
    tax_lots = book.market.tax_lots
    fx_rate = None
    if len(trades):
        fx_rate = trades[["fund_id", "security_id"]].merge(
            drift[["fund_id", "security_id", "fx_rate"]], on=["fund_id", "security_id"], how="left"
        )["fx_rate"].set_axis(trades.index)
        if len(plan.trades):   # a substitute the fund does not hold has no drift row: the plan knows its rate
            fx_rate = fx_rate.fillna(_plan_rates(trades, plan.trades))
            # Harvest sales close their qualifying lots, swap backs all: the plan's lot rule.
            is_tax = (trades["reason"] == REASON_TAX).to_numpy()
            rule = trades.loc[is_tax, ["fund_id", "security_id"]].merge(
                plan.trades[["fund_id", "security_id", "lot_rule"]].drop_duplicates(["fund_id", "security_id"]),
                on=["fund_id", "security_id"], how="left")["lot_rule"].to_numpy()
            trades = trades.assign(lot_rule=None)
            trades.loc[is_tax, "lot_rule"] = rule
    trades, lots = realize_gains(as_of, trades, tax_lots, book.funds, fx_rate=fx_rate,
                                 recent_loss_sales=inputs.recent_loss_sales if tax_lots is not None else None)
    trades = trades.drop(columns="lot_rule", errors="ignore")
    if len(proposals):
        proposals = summarize_gains(proposals, trades)
    else:
        proposals = proposals.assign(est_realized_gain_short=np.nan, est_realized_gain_long=np.nan,
                                     wash_sale_trades=0)
    return _tax_totals(proposals, trades), trades, _or_empty(lots, LOT_COLUMNS)


@dataclass(frozen=True)
class _Outcome:
    """What the night decided, before the fund summary."""

    triggers: pd.Series
    blocked: pd.DataFrame
    proposals: pd.DataFrame
    trades: pd.DataFrame
    lots: pd.DataFrame
    tracking: pd.DataFrame
    compliance: pd.DataFrame            # the proposals' compliance results


def _decision(as_of, inputs: NightInputs, book: _Book, measured: _Measured, carried, out: _Outcome) -> NightDecision:
    """The fund summary (status, flow, in-kind gain, model, state note), compliance on the
    holdings, rejection hints and straight-through approval; every frame with its columns."""
    funds, market, proposals = book.funds, book.market, out.proposals
    flows = market.flows
    summary = measured.summary.assign(flow=measured.summary["fund_id"].map(flows.groupby("fund_id")["amount"].sum())
                                      if flows is not None and len(flows) else np.nan)
    # The unrealized gain that left the fund in kind tonight (no gain is realized on it).
    summary["in_kind_unrealized_gain"] = summary["fund_id"].map(market.in_kind_gain).astype("float64")
    proposals = proposals.assign(in_kind_unrealized_gain=proposals["fund_id"].map(market.in_kind_gain).astype(
        "float64") if len(proposals) else pd.Series(dtype="float64"))
    fund_summary = _fund_summary(as_of, funds, summary, out.triggers, out.blocked, proposals)
    fund_summary["model_id"] = fund_summary["fund_id"].map(fund_models(funds))
    fund_summary["state_note"] = fund_summary["fund_id"].map(carried.state.set_index("fund_id")["note"]).astype(
        object)
    # Compliance on the holdings, every night, traded or not (proposal_id null): a fund failing
    # a rule in band is an exception a person sees.
    on_holdings = judge_holdings(as_of, measured.drift, summary, funds, book.securities,
                                 skip=book.validation_blocked)
    parts = [part for part in (on_holdings, out.compliance) if len(part)]
    compliance = pd.concat(parts, ignore_index=True) if parts else _or_empty(None, COMPLIANCE_COLUMNS)
    proposals = rejection_hints(proposals, inputs.recent_rejections)
    # Keep last: the rule reads every finding the night attached to the proposals.
    proposals = with_auto_approval(proposals, out.trades, funds)
    return NightDecision(
        measured.drift, _or_empty(measured.class_drift, CLASS_DRIFT_COLUMNS), book.targets, fund_summary,
        proposals, out.trades, out.lots, out.blocked, tracking=_or_empty(out.tracking, TRACKING_COLUMNS),
        compliance=compliance, baskets=_or_empty(market.baskets, BASKET_COLUMNS),
        in_kind_lots=_or_empty(market.in_kind_lots, IN_KIND_LOT_COLUMNS), settled=market,
        fund_state=with_compliance(carried.state, compliance)[FUND_STATE_COLUMNS],
        executed_by_positions=carried.done_by_positions[EXECUTION_COLUMNS])


def _or_empty(frame: pd.DataFrame | None, columns: list[str]) -> pd.DataFrame:
    """``frame``, or an empty frame with ``columns`` (object) when it has no row."""
    if frame is not None and len(frame):
        return frame
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def _raised_targets(before: pd.DataFrame, after: pd.DataFrame, restrictions: pd.DataFrame) -> pd.DataFrame:
    """(fund, security) whose target an exclusion raised (its substitute, or the others)."""
    if after is before:
        return pd.DataFrame({"fund_id": pd.Series(dtype=object), "security_id": pd.Series(dtype=object)})
    key = ["fund_id", "security_id"]
    funds = restrictions["fund_id"]
    before, after = before[isin_ids(before["fund_id"], funds)], after[isin_ids(after["fund_id"], funds)]
    old = before.groupby(key)["target_weight"].sum()
    new = after[after["security_id"] != CASH].groupby(key)["target_weight"].sum()
    raised = new[new > old.reindex(new.index).fillna(0.0) + WEIGHT_EPS]
    return raised.index.to_frame(index=False)


def _plan_rates(trades: pd.DataFrame, planned: pd.DataFrame) -> pd.Series:
    """fx rate of each planned tax trade, from its notional (base) over quantity × price."""
    rate = planned["notional"] / (planned["quantity"] * planned["price"])
    lookup = pd.Series(rate.to_numpy(), index=pd.MultiIndex.from_frame(planned[["fund_id", "security_id"]]))
    lookup = lookup[~lookup.index.duplicated()]
    keys = pd.MultiIndex.from_frame(trades[["fund_id", "security_id"]])
    return pd.Series(lookup.reindex(keys).to_numpy(), index=trades.index)


def _tax_totals(proposals: pd.DataFrame, trades: pd.DataFrame) -> pd.DataFrame:
    """est_harvested_loss (the loss the harvest sales realize, <= 0; 0 without one) and
    tax_trade_count per proposal."""
    if proposals.empty:
        return proposals.assign(est_harvested_loss=pd.Series(dtype="float64"),
                                tax_trade_count=pd.Series(dtype="int64"))
    tax = trades[trades["reason"] == REASON_TAX]
    harvest_sales = tax[(tax["side"] == "SELL") & tax["harvest_of"].isna()]
    loss = harvest_sales.groupby("proposal_id")["est_realized_gain"].sum().clip(upper=0.0)
    count = tax.groupby("proposal_id").size()
    return proposals.assign(est_harvested_loss=proposals["proposal_id"].map(loss).fillna(0.0).astype("float64"),
                            tax_trade_count=proposals["proposal_id"].map(count).fillna(0).astype("int64"))


def with_auto_approval(proposals: pd.DataFrame, trades: pd.DataFrame, funds: pd.DataFrame) -> pd.DataFrame:
    """``auto_approve`` (the fund's straight-through rule approves the proposal on publish,
    ``rebalance_core.approval``) and ``auto_approve_note`` (the review note it gets)."""
    qualifies = auto_approvable(proposals, trades, funds)
    notes = auto_approval_notes(proposals, funds).where(qualifies, None) if len(proposals) else None
    return proposals.assign(auto_approve=qualifies, auto_approve_note=notes)


def with_class_spreads(securities: pd.DataFrame | None, asset_classes: pd.DataFrame | None) -> pd.DataFrame | None:
    """A security without its own half spread takes its asset class's."""
    if securities is None or securities.empty:
        return None
    if asset_classes is None or asset_classes.empty or "half_spread_bps" not in asset_classes:
        return securities
    by_class = asset_classes.drop_duplicates("asset_class").set_index("asset_class")["half_spread_bps"]
    own = (securities["half_spread_bps"] if "half_spread_bps" in securities
           else pd.Series(np.nan, index=securities.index))
    return securities.assign(half_spread_bps=pd.to_numeric(own, errors="coerce").astype("float64").fillna(
        securities["asset_class"].map(by_class).astype("float64")))


def _blocked_by_validation(blocked: pd.DataFrame | None) -> pd.DataFrame:
    if blocked is None or blocked.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in BLOCKED_COLUMNS})
    return blocked[BLOCKED_COLUMNS].drop_duplicates("fund_id").reset_index(drop=True)


def _add_blocked(blocked: pd.DataFrame, fund_ids: pd.Series, reason: str) -> pd.DataFrame:
    if fund_ids.empty:
        return blocked
    extra = pd.DataFrame({"fund_id": fund_ids.to_numpy(), "blocked_reason": reason})
    return pd.concat([blocked, extra], ignore_index=True)


def _fund_summary(as_of, funds, summary, triggers, blocked, proposals) -> pd.DataFrame:
    out = summary.merge(funds[["fund_id", "name", "base_currency", "policy"]], on="fund_id", how="left")
    # Funds that appear only in faults (positions of a fund not in funds.csv) are listed too.
    unknown = blocked.loc[~blocked["fund_id"].isin(out["fund_id"]), ["fund_id"]]
    out = pd.concat([out, unknown], ignore_index=True) if len(unknown) else out
    out = out.merge(blocked, on="fund_id", how="left")
    out["trigger"] = out["fund_id"].map(triggers)
    out["proposal_id"] = out["fund_id"].map(proposals.set_index("fund_id")["proposal_id"]) if len(proposals) else None
    is_blocked = out["blocked_reason"].notna()
    out.loc[is_blocked, "trigger"] = None
    out["status"] = np.where(is_blocked, STATUS_BLOCKED,
                             np.where(out["proposal_id"].notna(), STATUS_PROPOSED, STATUS_IN_BAND))
    out["breached"] = out["breached"].fillna(False).astype(bool)
    out["breach_count"] = out["breach_count"].fillna(0).astype("int64")
    out["as_of_date"] = as_of
    return out.sort_values("fund_id", ignore_index=True)
