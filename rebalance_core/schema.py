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

# Reason codes carried by every proposed trade.
REASON_BAND = "band_breach"
REASON_CALENDAR = "calendar"
REASON_CASH_FLOW = "cash_flow"
REASON_MODEL_CHANGE = "model_change"

# Weights are compared with this slack so that 0.1 + 0.2 style noise never breaches a band.
WEIGHT_EPS = 1e-9

FUND_COLUMNS = (
    "fund_id", "name", "base_currency", "policy", "frequency", "abs_band", "rel_band",
    "rebalance_to", "min_trade_notional", "cash_buffer", "allow_fractional",
)
