"""A proposal's lifecycle: its states, the events that move it, and the rules of each move.

One pure state machine that every caller carries out: the CLI, the review view and its API
(``rebalance_pipeline.warehouse.decide``), the nightly publish (straight-through approval,
supersession, a rerun of a reviewed date) and the fund state that records execution and
expiry. Nothing here reads or writes; the warehouse looks up the facts (the proposal's row,
its fund's threshold, a twin approval) and applies what ``transition`` returns.

States (``STATES``)::

    pending_review ──approve (gross <= threshold or none)──────────────► approved ──execute──► executed
        │  │  └────approve (gross > threshold: four eyes)──► pending_second_approval   └─expire──► expired
        │  │                                                   │  │  └─approve (another person)─► approved
        │  └─auto_approve (publish; the fund's rule) ─► approved │  └─reject──► rejected
        ├─reject──► rejected                                   └─supersede──► superseded
        └─supersede (a later night of the fund)──► superseded

Rules:
- four eyes: a proposal whose gross traded notional (base currency) is *above* its fund's
  ``second_approval_notional`` needs two different people; exactly equal is not above. Both
  are money, compared exactly as ``Decimal`` (``needs_second_approval``), never as floats;
- the first approver cannot give the second (names compared case-insensitively, trimmed);
- a rejection at either stage ends it; ``rejected``, ``superseded``, ``expired`` and
  ``executed`` are final (``FINAL``), ``approved`` moves only to executed or expired;
- an approval (by a person or the rule) is refused when the fund already holds another
  proposal of the same or a later date that is approved or first-approved (``TWIN_STATES``):
  both would send the same drift to the market;
- straight-through approval (``auto_approve``) needs ``pending_review`` and a proposal the
  fund's rule approves (``rebalance_core.approval``: within the limits, no wash sale, no
  realized short-term gain, no restriction or compliance finding, not above the four-eyes
  threshold: no rule stands in for two people);
- a later night of the fund supersedes what still waits for a person (``SUPERSEDABLE``); a
  rerun of the same date replaces only ``pending_review`` proposals (``RERUN_REPLACEABLE``):
  a decided proposal, a first approval included, never changes on a rerun.

Where the states are stored: ``proposal.status`` holds the contract's review values
(``pending_review``, ``pending_second_approval``, ``approved``, ``rejected``, ``superseded``),
which reporting jobs are built against. ``executed`` and ``expired`` are not new status
values: a proposal that was executed or expired *was approved* (the V006 trigger keeps an
approved row final), so its status stays ``approved`` and the execution outcome is kept beside
it by the fund state (``EXECUTION_STATES``); ``state_of(status, execution)`` reads the pair
back as one lifecycle state and ``stored(state)`` splits it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import pandas as pd

from rebalance_core.schema import (
    APPROVED,
    FIRST_APPROVAL,
    PENDING,
    PENDING_SECOND,
    REJECTED,
    SUPERSEDED,
)

EXPIRED = "expired"
EXECUTED = "executed"
STATES = (PENDING, PENDING_SECOND, APPROVED, REJECTED, SUPERSEDED, EXPIRED, EXECUTED)
# Stored in proposal.status (the contract's values); the other two live beside it.
STATUS_STATES = (PENDING, PENDING_SECOND, APPROVED, REJECTED, SUPERSEDED)
EXECUTION_STATES = (EXECUTED, EXPIRED)

# Events.
APPROVE = "approve"            # a person approves (CLI, review view, API)
REJECT = "reject"              # a person rejects
AUTO_APPROVE = "auto_approve"  # the fund's straight-through rule, at publish
SUPERSEDE = "supersede"        # a later night of the fund proposes anew
EXECUTE = "execute"            # the orders are done (executions.csv, later positions, an operator's word)
EXPIRE = "expire"              # approved, never executed within the fund's business days
EVENTS = (APPROVE, REJECT, AUTO_APPROVE, SUPERSEDE, EXECUTE, EXPIRE)

FINAL = (REJECTED, SUPERSEDED, EXPIRED, EXECUTED)
# Statuses that make a fund's other approval a twin (the same drift traded twice).
TWIN_STATES = (APPROVED, PENDING_SECOND)
RULE_PREFIX = "rule:"          # reviewed_by of decisions taken by a rule (rule:auto)

# Money columns are NUMERIC(28, 6) in the warehouse (proposal_trade.notional,
# fund_ref.second_approval_notional): Python compares what PostgreSQL stores.
MONEY_SCALE = Decimal("0.000001")


@dataclass(frozen=True)
class Transition:
    source: str
    event: str
    target: str
    audit: str | None   # proposal_review.decision written with it (None: no audit row)
    rule: str           # the condition, in words (docs/concepts/proposal-lifecycle.md)


TRANSITIONS = (
    Transition(PENDING, APPROVE, APPROVED, APPROVED,
               "gross notional not above the fund's second_approval_notional (or none set); no twin approval"),
    Transition(PENDING, APPROVE, PENDING_SECOND, FIRST_APPROVAL,
               "gross notional above the fund's second_approval_notional: the first of two approvals"),
    Transition(PENDING, REJECT, REJECTED, REJECTED, "a person rejects; final"),
    Transition(PENDING, AUTO_APPROVE, APPROVED, APPROVED,
               "at publish, when the fund's straight-through rule approves it (rebalance_core.approval); no twin"),
    Transition(PENDING, SUPERSEDE, SUPERSEDED, None, "a later night of the fund"),
    Transition(PENDING_SECOND, APPROVE, APPROVED, APPROVED,
               "a second person (not the first approver); no twin approval"),
    Transition(PENDING_SECOND, REJECT, REJECTED, REJECTED, "a rejection at the second stage ends it too"),
    Transition(PENDING_SECOND, SUPERSEDE, SUPERSEDED, None,
               "a later night of the fund (sized on positions that night replaced)"),
    Transition(APPROVED, EXECUTE, EXECUTED, None,
               "executions.csv fills or cancels every order, later positions show the trades, or an operator's word"),
    Transition(APPROVED, EXPIRE, EXPIRED, None, "never executed within the fund's number of business days"),
)
_BY_SOURCE_EVENT: dict[tuple[str, str], tuple[Transition, ...]] = {}
for _t in TRANSITIONS:
    _BY_SOURCE_EVENT[(_t.source, _t.event)] = (*_BY_SOURCE_EVENT.get((_t.source, _t.event), ()), _t)

# States a later night supersedes, and states a rerun of the same date may replace.
SUPERSEDABLE = tuple(s for s in STATES if (s, SUPERSEDE) in _BY_SOURCE_EVENT)
RERUN_REPLACEABLE = (PENDING,)


class LifecycleError(Exception):
    """A move the lifecycle does not allow (the message says why)."""


class IllegalTransition(LifecycleError):
    """No transition from the state on that event (decided, superseded, unknown event)."""

    def __init__(self, state: str, event: str):
        self.state, self.event = state, event
        super().__init__(f"a proposal that is {state} cannot take {event!r}")


class FourEyesViolation(LifecycleError):
    """The second approval was asked of the person who gave the first."""


class TwinApproval(LifecycleError):
    """The fund already has another approved or first-approved proposal of this date or later."""


class ReservedName(LifecycleError):
    """A person's decision under a name that marks rule decisions (``rule:...``)."""


def money(value) -> Decimal | None:
    """``value`` as the warehouse stores money: a Decimal at 6 decimals, half away from zero
    (PostgreSQL's NUMERIC rounding); a float is read through its shortest decimal text, which
    is what the COPY sends. None, NaN or text that is no number: None."""
    if value is None:
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float)
                                                                  else str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite():
        return None
    return number.quantize(MONEY_SCALE, rounding=ROUND_HALF_UP)


def gross_notional(notionals) -> Decimal:
    """Σ of trade notionals as stored (each rounded to the money scale first, as the COPY does)."""
    return sum((money(n) or Decimal(0) for n in notionals), Decimal(0))


def needs_second_approval(gross, threshold) -> bool:
    """Four eyes: ``gross`` strictly above ``threshold`` (None: no threshold, one approval).
    Both compared as stored money (Decimal), so exactly equal is not above."""
    limit = money(threshold)
    if limit is None:
        return False
    return (money(gross) or Decimal(0)) > limit


def same_person(a: str | None, b: str | None) -> bool:
    """Names as typed (CLI) or as the identity provider spells them (UI): "Alice" is "alice"."""
    return a is not None and b is not None and a.strip().casefold() == b.strip().casefold()


def is_rule_name(name: str | None) -> bool:
    return (name or "").strip().lower().startswith(RULE_PREFIX)


def legal_events(state: str) -> tuple[str, ...]:
    """The events a proposal in ``state`` may take (for listings and tests)."""
    return tuple(dict.fromkeys(t.event for t in TRANSITIONS if t.source == state))


def transition(state: str, event: str, *, by: str | None = None, first_approved_by: str | None = None,
               gross: Decimal | float | None = None, threshold: Decimal | float | None = None,
               twin: bool = False) -> Transition:
    """The transition ``event`` takes a proposal in ``state`` through, under the rules above.

    ``by``: who decides (a person's name for approve/reject); ``first_approved_by``: the first
    approver of a ``pending_second_approval`` proposal; ``gross`` and ``threshold``: its gross
    notional and its fund's ``second_approval_notional`` (money, compared as Decimal);
    ``twin``: the fund already holds another approved or first-approved proposal of this date
    or later. Raises ``IllegalTransition``, ``FourEyesViolation``, ``TwinApproval`` or
    ``ReservedName``."""
    if event not in EVENTS:
        raise IllegalTransition(state, event)
    candidates = _BY_SOURCE_EVENT.get((state, event))
    if not candidates:
        raise IllegalTransition(state, event)
    if event in (APPROVE, REJECT) and is_rule_name(by):
        raise ReservedName(f"reviewer name {by.strip()!r} is reserved: names starting with {RULE_PREFIX!r} mark "
                           "decisions taken by a rule")
    if event in (APPROVE, AUTO_APPROVE):
        if state == PENDING_SECOND and same_person(by, first_approved_by):
            raise FourEyesViolation(f"the second approval must come from someone other than {first_approved_by}, "
                                    "who gave the first (four eyes)")
        if twin:
            raise TwinApproval("the fund already has another approved or first-approved proposal of this date or "
                               "later: approving this one too would trade the same drift twice")
        if event == AUTO_APPROVE and needs_second_approval(gross, threshold):
            raise FourEyesViolation("above the fund's second_approval_notional: two people must approve it, no rule "
                                    "may stand in for them")
        if state == PENDING and event == APPROVE:
            wanted = PENDING_SECOND if needs_second_approval(gross, threshold) else APPROVED
            return next(t for t in candidates if t.target == wanted)
    return candidates[0]


def can(state: str, event: str) -> bool:
    """Whether ``event`` has a move out of ``state`` at all (before the rules of a particular
    proposal: four eyes, twins, names), e.g. only an approved proposal can be executed."""
    return (state, event) in _BY_SOURCE_EVENT


def state_of(status: str, execution: str | None = None) -> str:
    """The lifecycle state of a stored proposal: its ``proposal.status`` and, for an approved
    one, the execution outcome kept beside it (``executed``, ``expired`` or None)."""
    if status not in STATUS_STATES:
        raise ValueError(f"unknown proposal status {status!r}")
    if execution is None or execution == "":
        return status
    if status != APPROVED or execution not in EXECUTION_STATES:
        raise ValueError(f"a {status} proposal cannot be {execution!r}")
    return execution


def stored(state: str) -> tuple[str, str | None]:
    """(proposal.status, execution outcome) that store a lifecycle state."""
    if state in EXECUTION_STATES:
        return APPROVED, state
    if state not in STATUS_STATES:
        raise ValueError(f"unknown lifecycle state {state!r}")
    return state, None


# ------------------------------------------------------------------ rejections remembered
# A rejection is remembered by fund and trigger, not by identical trades: a proposal rejected
# yesterday that comes back today with slightly different quantities carries who rejected
# it, when and why. The memory is the latest decision of the fund and trigger within
# REJECTION_MEMORY_DAYS calendar days: a later approval of that trigger ends it.
DECIDED = (APPROVED, REJECTED)
REJECTION_MEMORY_DAYS = 92
# Each night's latest decided proposal per (fund, trigger): the history read's columns.
DECISION_COLUMNS = ["fund_id", "trigger", "proposal_id", "as_of_date", "status", "reviewed_by", "reviewed_at",
                    "review_note"]
# What a proposal carries (proposal.rejected_before_*, V016).
REJECTED_BEFORE_COLUMNS = ["rejected_before_proposal_id", "rejected_before_date", "rejected_before_by",
                           "rejected_before_at", "rejected_before_note"]


def rejection_hints(proposals: pd.DataFrame, decisions: pd.DataFrame | None) -> pd.DataFrame:
    """``proposals`` with REJECTED_BEFORE_COLUMNS: for each, the latest decision of its fund
    and trigger (``decisions``: DECISION_COLUMNS, one row per fund and trigger) when that
    decision was a rejection of another proposal; else empty."""
    if decisions is None or decisions.empty or proposals.empty or "trigger" not in proposals:
        return proposals.assign(**{c: pd.Series(None, index=proposals.index, dtype="object")
                                   for c in REJECTED_BEFORE_COLUMNS})
    rejected = decisions[decisions["status"] == REJECTED].drop_duplicates(["fund_id", "trigger"])
    hint = rejected.rename(columns={"proposal_id": "rejected_before_proposal_id",
                                    "as_of_date": "rejected_before_date", "reviewed_by": "rejected_before_by",
                                    "reviewed_at": "rejected_before_at", "review_note": "rejected_before_note"})
    keys = pd.MultiIndex.from_frame(proposals[["fund_id", "trigger"]].astype(object))
    found = hint.set_index(["fund_id", "trigger"])[REJECTED_BEFORE_COLUMNS].reindex(keys)
    found.index = proposals.index
    itself = found["rejected_before_proposal_id"].to_numpy() == proposals["proposal_id"].to_numpy()
    found.loc[itself] = None
    return proposals.assign(**{c: found[c].astype(object).where(found[c].notna(), None)
                               for c in REJECTED_BEFORE_COLUMNS})
