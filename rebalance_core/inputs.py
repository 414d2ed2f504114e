"""The input registry: every landing file of the data contract, declared once.

Each ``InputFile`` says what a file is (its stem, daily or reference, required or optional),
what it holds (columns and their types, the closed set of values of each choice column, the
ids a column must refer to), how a new version of a reference file merges with the one in
force (by key), where it is stored (its warehouse table), which field of
``rebalance_core.night.NightInputs`` it becomes, and which validation suite checks it.

Everything else is derived from here: the landing reader's typing (``rebalance_pipeline
.landing.SPECS``), the checks of each choice column and each id reference (``rebalance_pipeline
.validation``), the reference history the warehouse keeps and publish writes, the merge rule
the night and the replay share (``merge_reference``), the ``NightInputs`` both build
(``night_inputs``) and the docs table of inputs (``rebalance_pipeline.inputs_doc``). How to add
a file: ``docs/development/input-registry.md``.

It lives in the core because it is pure data (no I/O) and the core's own merge and
``NightInputs`` builder read it; the adapters read it too.

Choice values are matched case-insensitively and normalised to the declared spelling when a
file is read (``FIFO`` is ``fifo``, ``buy`` is ``BUY``); anything else is a bad value that
blocks the funds it touches. An empty cell is no value (the column's default applies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from rebalance_core.schema import (
    BAND_LEVELS,
    COMPLIANCE_REGIMES,
    FREQUENCIES,
    POLICIES,
    REBALANCE_TO,
    RESTRICTION_RULES,
    SETTLEMENTS,
    WASH_SALE_RULES,
)

# Column kinds.
TEXT = "text"
NUMBER = "number"
BOOLEAN = "boolean"
DATE = "date"

# File kinds.
DAILY = "daily"          # the date's own rows; absent means none tonight
REFERENCE = "reference"  # kept as history: a version merges by key into the one in force

# What an id column may refer to (its universe tonight).
FUND = "fund"            # a fund of funds.csv in force
SECURITY = "security"    # a security of tonight's prices.csv or of securities.csv in force
MODEL = "model"          # a model that model_targets.csv defines (a version known tonight)
CALENDAR = "calendar"    # an exchange calendar exchange_calendars knows (XNYS, XLON, ...)
UNIVERSES = {
    FUND: "funds.csv",
    SECURITY: "prices.csv or securities.csv",
    MODEL: "any model_targets.csv version in force on this date",
    CALENDAR: "the exchange calendars of exchange_calendars, e.g. XNYS, XLON, XTKS",
}

# Validation scopes: suites about securities or models run once a night, the others shard by
# shard on the shard's funds (a fund's rows are all in its shard).
NIGHT = "night"
SHARD = "shard"

TAX_LOT_METHODS = ("hifo", "fifo", "min_gain")
# restrictions.csv: ``none`` lifts a fund's restrictions (a version replaces all its rows).
RESTRICTION_RULES_ACCEPTED = (*RESTRICTION_RULES, "none")
SIDES = ("BUY", "SELL")
EXECUTION_STATUSES = ("filled", "cancelled")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = TEXT
    required: bool = True        # must be in the file's header (else the night stops)
    key: bool = False            # must be non-empty on every row (else the row cannot be attributed)
    choices: tuple[str, ...] = ()  # closed set of values (matched case-insensitively)
    # a required choice column whose cell may be empty (a rule in code says when it must be set)
    blank_ok: bool = False
    refers_to: str | None = None   # FUND, SECURITY or MODEL: the value must exist there
    # booleans and dates: a non-empty value that does not read stops the night (it decides trades)
    strict: bool = False
    # optional numbers: text that is not a number blocks the fund instead of reading as empty
    checked: bool = False
    check: str | None = None     # name of the declared check in validation_result (default derived)
    meaning: str = ""

    @property
    def choice_check(self) -> str:
        return self.check or f"{self.name}_known"

    @property
    def reference_check(self) -> str:
        return self.check or f"{self.name}_exists"


@dataclass(frozen=True)
class InputFile:
    stem: str
    kind: str                    # DAILY or REFERENCE
    columns: tuple[Column, ...]
    meaning: str
    required: bool = False       # must be in every date's folder
    dated: bool = False          # has an as_of_date column that must be the folder's date
    merge_key: str | None = None  # reference files: a version replaces the rows of the keys it lists
    table: str = ""              # warehouse table (schema rebalance) its rows are stored in
    night_field: str | None = None  # field of NightInputs it becomes (None: read by validation only)
    suite: str | None = None     # validation suite that checks it (None: no row checks)
    scope: str = SHARD           # NIGHT or SHARD
    split: bool = False          # fund-keyed and large: read in batches, split by shard
    contract: str = ""           # the contract section that defines it
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def file_name(self) -> str:
        return f"{self.stem}.csv"

    @property
    def reference(self) -> bool:
        return self.kind == REFERENCE

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def choice_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.choices)

    @property
    def reference_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.refers_to)

    @property
    def blames(self) -> str:
        """The key a bad row of this file blames: its fund, else its model, else its security."""
        names = [c.name for c in self.columns]
        return next((k for k in ("fund_id", "model_id", "security_id") if k in names), names[0])


def _c(name: str, kind: str = TEXT, **kw) -> Column:
    return Column(name, kind, **kw)


def _opt(name: str, kind: str = TEXT, **kw) -> Column:
    return Column(name, kind, required=False, **kw)


AS_OF = _c("as_of_date")

INPUTS: tuple[InputFile, ...] = (
    # ----------------------------------------------------------------- the core contract
    InputFile("prices", DAILY, (AS_OF, _c("security_id", key=True), _c("close_price", NUMBER), _c("currency")),
              "closing price of each security", required=True, dated=True, table="price", night_field="prices",
              suite="prices", scope=NIGHT, contract="Input"),
    InputFile("positions", DAILY, (AS_OF, _c("fund_id", key=True, refers_to=FUND, check="fund_is_known"),
                                   _c("security_id", key=True), _c("quantity", NUMBER)),
              "what each fund holds at the close (quantity >= 0)", required=True, dated=True, table="position",
              night_field="positions", suite="positions", split=True, contract="Input"),
    InputFile("cash", DAILY, (AS_OF, _c("fund_id", key=True, refers_to=FUND, check="fund_is_known"), _c("currency"),
                              _c("amount", NUMBER)),
              "each fund's cash balance", required=True, dated=True, table="cash_balance", night_field="cash",
              suite="cash", contract="Input"),
    InputFile("targets", REFERENCE, (_c("fund_id", key=True), _c("security_id", key=True),
                                     _c("target_weight", NUMBER)),
              "a fund's own target weights (plus an optional CASH row) summing to 1", merge_key="fund_id",
              table="target_ref", night_field="targets", suite="targets", split=True, contract="Input",
              notes=("may be header-only or absent where every fund follows a model",)),
    InputFile("funds", REFERENCE, (
        _c("fund_id", key=True), _c("name"), _c("base_currency"),
        _c("policy", choices=POLICIES), _c("frequency", choices=FREQUENCIES, blank_ok=True),
        _c("abs_band", NUMBER), _c("rel_band", NUMBER), _c("rebalance_to", choices=REBALANCE_TO),
        _c("min_trade_notional", NUMBER), _c("cash_buffer", NUMBER), _c("allow_fractional", BOOLEAN),
        _opt("calendar", refers_to=CALENDAR), _opt("band_fraction", NUMBER), _opt("commission_bps", NUMBER),
        _opt("commission_per_share", NUMBER), _opt("max_turnover", NUMBER), _opt("max_cost_bps", NUMBER),
        _opt("tax_lot_method", choices=TAX_LOT_METHODS), _opt("min_trade_pct_nav", NUMBER),
        _opt("model_id", refers_to=MODEL, check="model_is_defined"),
        _opt("band_level", choices=BAND_LEVELS), _opt("harvest_loss_pct", NUMBER), _opt("harvest_min_loss", NUMBER),
        _opt("wash_sale_rule", choices=WASH_SALE_RULES), _opt("auto_approve_max_turnover", NUMBER),
        _opt("auto_approve_max_cost_bps", NUMBER), _opt("compliance", choices=COMPLIANCE_REGIMES),
        _opt("max_tracking_error", NUMBER), _opt("index_tracking", BOOLEAN, strict=True),
        _opt("creation_unit", NUMBER), _opt("custom_baskets", BOOLEAN, strict=True),
        _opt("second_approval_notional", NUMBER, checked=True), _opt("execution_expiry_days", NUMBER)),
              "one row per fund: its rebalancing policy", merge_key="fund_id", table="fund_ref", night_field="funds",
              suite="funds", contract="Input; extensions"),
    InputFile("securities", REFERENCE, (_c("security_id", key=True), _c("lot_size", NUMBER), _c("asset_class"),
                                        _c("tradable", BOOLEAN), _opt("half_spread_bps", NUMBER), _opt("adv", NUMBER),
                                        _opt("issuer")),
              "lot size (default 1), whether it may be traded, asset class, issuer", merge_key="security_id",
              table="security_ref", night_field="securities", suite="securities", scope=NIGHT, contract="Input"),
    InputFile("flows", DAILY, (_c("fund_id", key=True, refers_to=FUND), _c("amount", NUMBER)),
              "pending subscriptions (+) and redemptions (-) in base currency", table="flow", night_field="flows",
              suite="flows", contract="Input"),
    InputFile("tax_lots", DAILY, (_c("fund_id", key=True, refers_to=FUND), _c("security_id", key=True),
                                  _c("lot_id", key=True), _c("quantity", NUMBER), _c("unit_cost", NUMBER),
                                  _c("acquired_date", DATE)),
              "open tax lots", table="tax_lot", night_field="tax_lots", suite="tax_lots", split=True,
              contract="Input"),
    InputFile("fx_rates", DAILY, (_c("currency", key=True), _c("base_currency", key=True), _c("rate", NUMBER)),
              "1 unit of currency = rate units of base_currency", table="fx_rate", night_field="fx_rates",
              suite="fx_rates", scope=NIGHT, contract="Input"),
    # ----------------------------------------------------------------- models, restrictions, harvesting
    InputFile("asset_classes", REFERENCE, (_c("asset_class", key=True), _opt("abs_band", NUMBER),
                                           _opt("rel_band", NUMBER), _opt("half_spread_bps", NUMBER)),
              "bands and half spread of an asset class", merge_key="asset_class", table="asset_class_ref",
              night_field="asset_classes", contract="model portfolios"),
    InputFile("model_targets", REFERENCE, (_c("model_id", key=True), _c("security_id", key=True),
                                           _c("target_weight", NUMBER), _opt("effective_date", DATE, strict=True)),
              "a model's weights (optional CASH row) summing to 1", merge_key="model_id", table="model_target_ref",
              night_field="model_targets", suite="model_targets", scope=NIGHT, contract="model portfolios",
              notes=("NightInputs gets every version known tonight (dated by folder and effective_date), "
                     "not only the one in force",)),
    InputFile("models", REFERENCE, (_c("model_id", key=True), _c("name")), "names of models for display",
              merge_key="model_id", table="model_ref", contract="model portfolios"),
    InputFile("restrictions", REFERENCE, (
        _c("fund_id", key=True), _c("security_id", key=True, refers_to=SECURITY),
        _c("rule", choices=RESTRICTION_RULES_ACCEPTED),
        _opt("substitute_id", refers_to=SECURITY)),
              "no_buy / no_sell / exclude (with an optional substitute) per fund and security; none lifts them",
              merge_key="fund_id", table="restriction_ref", night_field="restrictions", suite="restrictions",
              contract="model portfolios"),
    InputFile("substitutes", REFERENCE, (_c("security_id", key=True, refers_to=SECURITY),
                                         _c("substitute_id", key=True, refers_to=SECURITY), _c("rank", NUMBER)),
              "securities that may stand in for one after a tax-loss harvest, lowest rank first",
              merge_key="security_id", table="substitute_ref", night_field="substitutes", suite="substitutes",
              scope=NIGHT, contract="model portfolios"),
    # ----------------------------------------------------------------- ETF operations
    InputFile("index_levels", DAILY, (_c("model_id", key=True, refers_to=MODEL), _c("level", NUMBER)),
              "the level of the index a model follows", table="index_level", night_field="index_levels",
              suite="index_levels", scope=NIGHT, contract="ETF operations"),
    InputFile("creations", DAILY, (_c("fund_id", key=True, refers_to=FUND, check="fund_is_known"),
                                   _c("units", NUMBER), _c("settlement", choices=SETTLEMENTS)),
              "authorized participants' orders in creation units (> 0 creation, < 0 redemption)", table="creation",
              night_field="creations", suite="creations", contract="ETF operations"),
    InputFile("fund_shares", DAILY, (_c("fund_id", key=True, refers_to=FUND), _c("shares_outstanding", NUMBER)),
              "shares outstanding (NAV per share = NAV / shares_outstanding)", table="fund_shares",
              night_field="fund_shares", suite="fund_shares", contract="ETF operations"),
    # ----------------------------------------------------------------- across nights
    # The order desk's report, read into the fund state's facts (rebalance_pipeline.executions):
    # proposal_id refers to a proposal of the warehouse, not to a file, and is checked there.
    InputFile("executions", DAILY, (_c("proposal_id", key=True), _c("security_id", key=True),
                                    _c("side", choices=SIDES), _c("quantity", NUMBER), _c("price", NUMBER),
                                    _opt("status", choices=EXECUTION_STATUSES)),
              "the order desk's report: what of an approved proposal was executed, at which price, or cancelled",
              table="execution", contract="across nights",
              notes=("checked against the warehouse's proposals at ingest (rebalance_pipeline.executions): a bad row "
                     "is left out with a finding and blocks no fund; what it reports reaches NightInputs.executions "
                     "with the earlier nights' reports",)),
)

REGISTRY: dict[str, InputFile] = {f.stem: f for f in INPUTS}
REFERENCE_STEMS = tuple(f.stem for f in INPUTS if f.reference)
DAILY_STEMS = tuple(f.stem for f in INPUTS if not f.reference)


def choice_columns() -> list[tuple[str, Column]]:
    """(stem, column) of every choice column in the registry."""
    return [(f.stem, c) for f in INPUTS for c in f.choice_columns]


def reference_columns() -> list[tuple[str, Column]]:
    """(stem, column) of every column that must refer to an id."""
    return [(f.stem, c) for f in INPUTS for c in f.reference_columns]


# ----------------------------------------------------------------------------- one merge rule
def merge_reference(stem: str, in_force: pd.DataFrame | None, version: pd.DataFrame | None) -> pd.DataFrame | None:
    """The reference rows in force once ``version`` (a new file of ``stem``) arrives: it
    replaces every row of the keys (its ``merge_key`` values) it lists; the other keys keep
    their rows. A funds.csv of one row changes that fund only. The night (``steps.ingest``,
    against the warehouse history) and the replay (``rebalance simulate``, folder by folder)
    both merge with this function."""
    key = REGISTRY[stem].merge_key
    if key is None:
        raise ValueError(f"{stem} is not a reference file (no merge key)")
    if version is None:
        return in_force
    if in_force is None or in_force.empty:
        return version.reset_index(drop=True)
    kept = in_force[~in_force[key].isin(version[key])]
    if kept.empty:
        return version.reset_index(drop=True)
    return pd.concat([version, kept], ignore_index=True)


# ----------------------------------------------------------------------------- one NightInputs builder
# Fields of NightInputs that no file gives: what the night carries from the warehouse (or the
# replay from its own earlier days) and what validation decided.
# ``previous_state``: the fund state of the previous night (rebalance_core.fund_state);
# ``approved`` / ``executions``: the approvals a fund may be waiting on and what was reported
# done of them (earlier nights, operators, tonight's executions.csv once checked).
CARRIED_FIELDS = ("blocked", "recent_loss_sales", "approved", "executions", "previous_state", "recent_buys",
                  "open_harvests", "tracking_history", "price_history", "model_targets", "recent_rejections")
# Optional reference data: an empty frame means none (the core reads None as "no such file").
_NONE_WHEN_EMPTY = ("securities", "asset_classes", "restrictions", "substitutes")


def night_inputs(files: Mapping[str, pd.DataFrame | None], carried: Mapping[str, pd.DataFrame | None] | None = None):
    """The ``NightInputs`` of a night from its inputs in force (``files``: by stem, the
    date's daily files and the reference data in force) and what carries over (``carried``:
    by NightInputs field, see CARRIED_FIELDS; ``model_targets`` there is the version history).
    The nightly shard (``steps.decide_shard``) and the replay (``rebalance simulate``) both
    build theirs here, so the replay decides on exactly what the night decides on."""
    from rebalance_core.night import NightInputs

    carried = dict(carried or {})
    unknown = set(carried) - set(CARRIED_FIELDS)
    if unknown:
        raise ValueError(f"not carried NightInputs fields: {sorted(unknown)}")
    names = {f.name for f in NightInputs.__dataclass_fields__.values()}
    values: dict[str, pd.DataFrame | None] = {}
    for spec in INPUTS:
        if spec.night_field is None or spec.night_field not in names or spec.stem == "model_targets":
            continue
        frame = files.get(spec.stem)
        if frame is not None and spec.night_field in _NONE_WHEN_EMPTY and frame.empty:
            frame = None
        values[spec.night_field] = frame
    for required in ("prices", "positions", "cash", "funds", "targets"):
        if values.get(required) is None:
            raise ValueError(f"night_inputs: {required} is required")
    values.update({k: v for k, v in carried.items() if k in names})
    return NightInputs(**values)
