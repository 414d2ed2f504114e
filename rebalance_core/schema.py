"""Names shared by the core and its adapters: columns, policy values, statuses.

One place for the vocabulary of the data contract, so a typo is an ImportError rather
than a silently empty column.
"""

from __future__ import annotations

CASH = "CASH"  # pseudo security id of a fund's cash in targets.csv and fund_drift

POLICIES = ("calendar", "threshold", "hybrid")
FREQUENCIES = ("daily", "weekly", "monthly", "quarterly", "annual")
REBALANCE_TO = ("target", "band", "halfway", "vanguard")

# Where breaching holdings go, as a fraction of their band (1 = the edge, 0 = the target).
BAND_FRACTION = {"band": 1.0, "halfway": 0.5}
# Vanguard's target-date funds (2024): trigger at 200 bp of drift, trade back to 175 bp.
VANGUARD_TRIGGER = 0.02
VANGUARD_DESTINATION = 0.0175

TRIGGER_CALENDAR = "calendar"
TRIGGER_THRESHOLD = "threshold"
TRIGGER_CASH_FLOW = "cash_flow"
# A fund's targets differ from those of its previous business date (a new model version, a
# move to another model, a new targets.csv version): it rebalances whatever its policy.
TRIGGER_MODEL_CHANGE = "model_change"
# The fund holds a security its restrictions exclude: it is sold whatever the policy.
TRIGGER_RESTRICTION = "restriction"
# Tax-loss harvesting or the swap back after it, with nothing else to trade.
TRIGGER_TAX = "tax"
# The fund's ex-ante tracking error exceeds its funds.csv max_tracking_error: it rebalances
# to target, whatever its policy (trigger and trade reason ``tracking``).
TRIGGER_TRACKING = "tracking"
# An index_tracking fund trades into a model version announced ahead at the close of the
# last trading day before it is effective (its eve), whatever its policy.
TRIGGER_INDEX_EVENT = "index_event"
# Triggers that take every holding of the fund to its (new) targets, whatever its policy,
# bands or band level; a trade's reason is then the trigger itself.
TO_TARGET_TRIGGERS = (TRIGGER_MODEL_CHANGE, TRIGGER_TRACKING, TRIGGER_INDEX_EVENT)

# Where a fund's bands are judged (funds.csv band_level).
BAND_LEVEL_SECURITY = "security"
BAND_LEVEL_ASSET_CLASS = "asset_class"
BAND_LEVELS = (BAND_LEVEL_SECURITY, BAND_LEVEL_ASSET_CLASS)

STATUS_PROPOSED = "proposed"
STATUS_IN_BAND = "in_band"
STATUS_BLOCKED = "blocked"

PENDING = "pending_review"
APPROVED = "approved"
REJECTED = "rejected"
SUPERSEDED = "superseded"
# Four eyes: a proposal above its fund's second_approval_notional waits here after its first
# approval; the audit records that approval as FIRST_APPROVAL.
PENDING_SECOND = "pending_second_approval"
FIRST_APPROVAL = "first_approval"
AWAITING_PERSON = (PENDING, PENDING_SECOND)   # proposals a person still has to decide
PROPOSAL_STATUSES = (PENDING, PENDING_SECOND, APPROVED, REJECTED, SUPERSEDED)

# Reason codes carried by every proposed trade (a fund traded for a trigger of its own,
# model_change, tracking, index_event, gives its trades that trigger: proposals.py).
REASON_BAND = "band_breach"
REASON_CALENDAR = "calendar"
REASON_CASH_FLOW = "cash_flow"
REASON_RESTRICTION = "restriction"   # restrictions.csv decided it (exclusion, substitute, no_buy/no_sell)
REASON_TAX = "tax"                   # a tax-loss harvest or the swap back after it

# restrictions.csv rules.
RULE_NO_BUY = "no_buy"      # may hold and sell, never buy
RULE_NO_SELL = "no_sell"    # may buy, never sell
RULE_EXCLUDE = "exclude"    # must not hold: sold; its target goes to substitute_id or the others
RESTRICTION_RULES = (RULE_NO_BUY, RULE_NO_SELL, RULE_EXCLUDE)

# funds.csv wash_sale_rule: ``avoid`` never proposes a wash sale (default for funds that
# harvest losses), ``flag`` proposes it and flags the trade (default otherwise).
WASH_AVOID = "avoid"
WASH_FLAG = "flag"
WASH_SALE_RULES = (WASH_AVOID, WASH_FLAG)

# funds.csv `compliance`: the diversification rules a fund's proposals are judged on.
COMPLIANCE_RIC = "ric"
COMPLIANCE_UCITS = "ucits"
COMPLIANCE_REGIMES = (COMPLIANCE_RIC, COMPLIANCE_UCITS)

# ETF primary market (creations.csv, the basket / PCF, in_kind_lot).
SETTLEMENT_IN_KIND = "in_kind"
SETTLEMENT_CASH = "cash"
SETTLEMENTS = (SETTLEMENT_IN_KIND, SETTLEMENT_CASH)
BASKET_CREATION = "creation"
BASKET_REDEMPTION = "redemption"
IN_KIND_DELIVERED = "delivered"   # in_kind_lot.kind: a lot (part) that left the fund on a redemption
IN_KIND_RECEIVED = "received"     # in_kind_lot.kind: a lot the fund opened on a creation

# Wash sales (IRS §1091): a loss sale and a buy of the same security within this many
# calendar days of each other. One window for lot choice, harvesting and the history reads.
WASH_SALE_DAYS = 30

# How a yes/no column reads in text (funds.csv allow_fractional, index_tracking,
# custom_baskets; securities.csv tradable; a bool from the warehouse reads "true"): one set
# for landing, the core, the replay and the formatting. Anything else (blank included) is
# neither; landing reports a value in neither set.
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})


def is_true_word(value) -> bool:
    """A yes/no value (text, bool or number) that reads as yes."""
    return str(value).strip().lower() in TRUE_WORDS


# Weights are compared with this slack so that 0.1 + 0.2 style noise never breaches a band.
WEIGHT_EPS = 1e-9
