"""Row-level validation of a night's inputs with Great Expectations 1.x.

The suites are defined here, in code, and run on an ephemeral GX context against the
pandas frames the landing reader produced (no GX project folder to deploy). Each
expectation carries in its ``meta`` what our pipeline needs to act on a failure: which
key it blames (a ``fund_id`` or a ``security_id``) and a sentence for ops. The unexpected
rows GX returns become *faults*; ``rebalance_core.faults.blocked_funds`` turns them into
the funds they block.

Cross-file rules (a held security with no price, a fund with no targets) are computed as a
boolean column per row with pandas and asserted by GX, so the failing rows keep their file
and row number.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rebalance_core.faults import FAULT_COLUMNS, empty_faults
from rebalance_core.inputs import CALENDAR, FUND, INPUTS, MODEL, NIGHT, SECURITY, UNIVERSES, InputFile
from rebalance_core.models import fund_models
from rebalance_core.schema import CASH, FREQUENCIES, POLICIES, RULE_EXCLUDE, RULE_NO_SELL

NO_ROWS = "no rows to check"
# Target weights of a fund (its CASH row included) must sum to 1 within this tolerance.
TARGET_SUM_TOLERANCE = 1e-6


@dataclass
class Check:
    dataset: str                 # file (or derived view) the rows come from
    name: str                    # short, stable name stored in validation_result.check
    expectation: Expectation     # a great_expectations.expectations class by name, with its arguments
    blames: str                  # "fund_id", "security_id" or "model_id"
    message: str                 # str.format template over the failing row's columns ({value}: the column)


@dataclass
class ValidationOutcome:
    results: pd.DataFrame        # one row per check: dataset, check, success, failed_rows, detail
    faults: pd.DataFrame         # one row per failing input row (FAULT_COLUMNS)
    # suite, result: each suite's GX validation result as JSON (rebalance_pipeline.data_docs.compact_result),
    # kept with the night for its Data Docs
    gx_results: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["suite", "result"]))


@dataclass(frozen=True)
class Expectation:
    """A Great Expectations expectation as its class name and arguments. The GX object is made
    only when a suite runs (``_GxSession.suite``): building the checks, or proving with pandas
    that every row passes (``_passes``), needs no GX import."""

    kind: str                    # e.g. "ExpectColumnValuesToBeInSet"
    kwargs: dict

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")

    def to_gx(self, gxe):
        return getattr(gxe, self.kind)(**self.kwargs)


class _ExpectationKinds:
    """``gxe.ExpectColumnValuesToBeInSet(column=..., value_set=...)`` as in GX's own module,
    giving an ``Expectation``."""

    def __getattr__(self, kind: str):
        if not kind.startswith("Expect"):
            raise AttributeError(kind)
        return lambda **kwargs: Expectation(kind, kwargs)


def _expectations() -> _ExpectationKinds:
    return _EXPECTATIONS


_EXPECTATIONS = _ExpectationKinds()


# Suites whose rows are about securities or currencies, not funds: a fault there touches
# every fund exposed to it, so they run once per night; the others run shard by shard on
# the shard's funds (a fund's rows are all in its shard) and give the same faults.
NIGHT_SUITES = (*(f.suite for f in INPUTS if f.scope == NIGHT and f.suite), "model_sums")


def build_checks(frames: dict[str, pd.DataFrame]) -> dict[str, tuple[pd.DataFrame, list[Check]]]:
    """The frames to validate and their checks, keyed by frame name (suite).

    Each input's suite is its declared checks (every choice column's values and every id
    reference, from ``rebalance_core.inputs``) plus the few rules that need code (ranges,
    sums, cross-file facts), registered by input in ``RULES``. Derived suites (held and
    targeted securities, weight sums, ETF terms) are built by their input's rules."""
    gxe = _expectations()
    night = _Night.of(frames)
    suites: dict[str, tuple[pd.DataFrame, list[Check]]] = {}
    for declared in INPUTS:
        frame = night.frame(declared.stem)
        if declared.suite is None or frame is None:
            continue
        rules = RULES.get(declared.stem)
        extra: dict[str, tuple[pd.DataFrame, list[Check]]] = {}
        checks: list[Check] = []
        if rules is not None:
            frame, checks, extra = rules(gxe, frame, night)
        frame, declared_checks = _declared_checks(gxe, declared, frame, night)
        suites[declared.suite] = (frame, declared_checks + checks)
        suites.update(extra)
    return suites


@dataclass
class _Night:
    """What the checks of one input need to know of the others."""

    frames: dict[str, pd.DataFrame]
    funds: pd.DataFrame
    targets: pd.DataFrame          # own targets in force of the funds that follow no model
    known_funds: pd.Index
    priced: pd.Index
    universes: dict[str, pd.Index]

    @classmethod
    def of(cls, frames: dict[str, pd.DataFrame]) -> _Night:
        funds = frames.get("funds", pd.DataFrame(columns=["fund_id"]))
        targets = frames.get("targets", pd.DataFrame(columns=["fund_id", "security_id", "target_weight",
                                                              "source_row"]))
        # A fund that follows a model is judged on its model (the model suites); rows of its
        # own left in the history from before it joined the model no longer apply to it.
        if len(funds) and len(targets):
            followers = fund_models(funds).dropna().index
            targets = targets[~targets["fund_id"].isin(followers)]
        known_funds = pd.Index(funds["fund_id"].unique())
        priced = pd.Index(frames["prices"]["security_id"].unique())
        securities = frames.get("securities")
        listed = pd.Index(securities["security_id"].unique()) if securities is not None else pd.Index([])
        models = frames.get("model_targets")
        universes = {FUND: known_funds, SECURITY: priced.union(listed),
                     MODEL: pd.Index(models["model_id"].unique()) if models is not None else pd.Index([]),
                     CALENDAR: _calendar_names(funds)}
        return cls(frames, funds, targets, known_funds, priced, universes)

    def frame(self, stem: str) -> pd.DataFrame | None:
        if stem == "funds":
            return self.funds if "funds" in self.frames else None
        if stem == "targets":
            return self.targets
        return self.frames.get(stem)

    def rate_available(self, rows: pd.DataFrame, currency: pd.Series) -> pd.Series:
        return _rate_available(currency, rows["fund_id"], self.funds, self.frames.get("fx_rates"))

    def with_price_and_rate(self, rows: pd.DataFrame) -> pd.DataFrame:
        prices = self.frames["prices"]
        security_currency = prices.drop_duplicates("security_id").set_index("security_id")["currency"]
        return rows.assign(security_is_priced=rows["security_id"].isin(self.priced),
                           rate_available=self.rate_available(rows, rows["security_id"].map(security_currency)))


def _calendar_names(funds: pd.DataFrame) -> pd.Index:
    """The exchange calendars a fund may name (exchange_calendars' names and aliases), read
    only when a fund names one: an unknown one would otherwise fail the night's date
    arithmetic (calendar policies, the approval's expiry) instead of blocking its fund."""
    if "calendar" not in funds or not funds["calendar"].astype("object").fillna("").astype(str).str.strip().any():
        return pd.Index([])
    import exchange_calendars

    return pd.Index(exchange_calendars.get_calendar_names(include_aliases=True))


def _declared_checks(gxe, declared: InputFile, frame: pd.DataFrame, night: _Night) -> tuple[pd.DataFrame,
                                                                                             list[Check]]:
    """The checks the registry declares for ``declared``: each choice column's values (an
    empty cell is the default, except in a column every row must set) and each id reference.
    A failing row names its file, row, column and value (the fault's dataset, source_row and
    message)."""
    checks: list[Check] = []
    derived = {}
    blames = declared.blames
    for column in declared.choice_columns:
        if column.name not in frame:
            continue
        values = frame[column.name].astype("object")
        if column.required and not column.blank_ok:
            values = values.where(values.notna(), "")   # a row that must choose and does not
        derived[f"{column.name}__choice"] = values
        checks.append(Check(declared.file_name, column.choice_check,
                            gxe.ExpectColumnValuesToBeInSet(column=f"{column.name}__choice",
                                                            value_set=list(column.choices)),
                            blames, f"{column.name} {{value!r}} is not one of " + ", ".join(column.choices)))
    for column in declared.reference_columns:
        if column.name not in frame:
            continue
        text = frame[column.name].astype("object").where(frame[column.name].notna(), "").astype(str).str.strip()
        derived[f"{column.name}__exists"] = (text == "") | text.isin(night.universes[column.refers_to])
        checks.append(Check(declared.file_name, column.reference_check,
                            gxe.ExpectColumnValuesToBeInSet(column=f"{column.name}__exists", value_set=[True]),
                            blames, f"{column.name} {{{column.name}!r}} is not a known {column.refers_to} "
                                    f"(not in {UNIVERSES[column.refers_to]})"))
    return (frame.assign(**derived) if derived else frame), checks


SuiteRules = tuple[pd.DataFrame, list[Check], dict[str, tuple[pd.DataFrame, list[Check]]]]


def _prices_rules(gxe, prices: pd.DataFrame, night: _Night) -> SuiteRules:
    return prices, [
        Check("prices.csv", "close_price_is_number", gxe.ExpectColumnValuesToNotBeNull(column="close_price"),
              "security_id", "{security_id} has no price or a price that is not a number"),
        Check("prices.csv", "close_price_positive",
              gxe.ExpectColumnValuesToBeBetween(column="close_price", min_value=0, strict_min=True),
              "security_id", "{security_id} price {value} is not positive"),
        Check("prices.csv", "security_priced_once", gxe.ExpectColumnValuesToBeUnique(column="security_id"),
              "security_id", "{security_id} is priced more than once"),
    ], {}


def _positions_rules(gxe, positions: pd.DataFrame, night: _Night) -> SuiteRules:
    # Cross-file rules become a boolean column per row, checked by GX: a value_set of
    # thousands of ids inside an expectation makes GX itself slow (it copies its config).
    held = night.with_price_and_rate(positions[positions["quantity"].fillna(0) > 0])
    return positions, [
        Check("positions.csv", "quantity_is_number", gxe.ExpectColumnValuesToNotBeNull(column="quantity"),
              "fund_id", "quantity of {security_id} is missing or not a number"),
        Check("positions.csv", "quantity_not_negative",
              gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=0),
              "fund_id", "quantity {value} of {security_id} is negative"),
    ], {"held": (held, _price_and_rate_checks(gxe, "positions.csv", "held", "holds"))}


def _cash_rules(gxe, cash: pd.DataFrame, night: _Night) -> SuiteRules:
    cash = cash.assign(rate_available=night.rate_available(cash, cash["currency"]))
    return cash, [
        Check("cash.csv", "amount_is_number", gxe.ExpectColumnValuesToNotBeNull(column="amount"),
              "fund_id", "cash amount is missing or not a number"),
        Check("cash.csv", "cash_has_fx_rate", gxe.ExpectColumnValuesToBeInSet(column="rate_available", value_set=[True]),
              "fund_id", "cash in a currency with no rate to the fund's base in fx_rates.csv"),
    ], {}


def _targets_rules(gxe, targets: pd.DataFrame, night: _Night) -> SuiteRules:
    security_targets = targets[(targets["security_id"] != CASH) & (targets["target_weight"].fillna(0) > 0)]
    security_targets = night.with_price_and_rate(security_targets)
    sums = targets.groupby("fund_id", as_index=False)["target_weight"].sum(min_count=1)
    sums = sums[sums["fund_id"].isin(night.known_funds)]
    return targets, [
        Check("targets.csv", "weight_is_number", gxe.ExpectColumnValuesToNotBeNull(column="target_weight"),
              "fund_id", "target weight of {security_id} is missing or not a number"),
        Check("targets.csv", "weight_in_unit_range",
              gxe.ExpectColumnValuesToBeBetween(column="target_weight", min_value=0, max_value=1),
              "fund_id", "target weight {value} of {security_id} is not between 0 and 1"),
        Check("targets.csv", "security_targeted_once",
              gxe.ExpectCompoundColumnsToBeUnique(column_list=["fund_id", "security_id"]),
              "fund_id", "{security_id} is targeted more than once"),
    ], {
        "targeted": (security_targets, _price_and_rate_checks(gxe, "targets.csv", "targeted", "targets")),
        "target_sums": (sums.rename(columns={"target_weight": "weight_sum"}), [
            Check("targets.csv", "weights_sum_to_one",
                  gxe.ExpectColumnValuesToBeBetween(column="weight_sum", min_value=1 - TARGET_SUM_TOLERANCE,
                                                    max_value=1 + TARGET_SUM_TOLERANCE),
                  "fund_id", "target weights (CASH included) sum to {value:.6g}, not 1"),
        ])}


def _funds_rules(gxe, funds: pd.DataFrame, night: _Night) -> SuiteRules:
    if not len(funds):
        return funds, [], {}
    followed = fund_models(funds)
    model = funds["fund_id"].map(followed)
    # .unique() on the arrays, not set(): set() iterates Arrow-backed strings in Python.
    file_targets = night.frames.get("file_targets")
    in_file = file_targets["fund_id"].unique() if file_targets is not None else []

    def optional(column: str):
        return funds[column] if column in funds else np.nan

    fund_rows = funds.assign(
        model_id=model,
        has_targets=funds["fund_id"].isin(night.targets["fund_id"].unique()) | model.notna(),
        one_target_source=~(model.notna() & funds["fund_id"].isin(in_file)),
        has_band=funds[["abs_band", "rel_band"]].notna().any(axis=1) | (funds["policy"] == "calendar")
        | (funds["rebalance_to"] == "vanguard"),
        # A calendar or hybrid fund must say its period (a threshold fund's is not read).
        frequency_set=(funds["policy"] == "threshold") | ~funds["policy"].isin(POLICIES) | funds["frequency"].notna(),
        harvest_loss_pct_or_none=optional("harvest_loss_pct"),
        harvest_min_loss_or_none=optional("harvest_min_loss"),
        max_tracking_error_or_none=optional("max_tracking_error"),
        # Four eyes: text that is not a number must block the fund, not switch the control off.
        second_approval_readable=(funds["second_approval_notional_readable"].astype("boolean").fillna(True)
                                  .astype(bool) if "second_approval_notional_readable" in funds else True),
        second_approval_or_none=optional("second_approval_notional"),
    )
    checks = [
        Check("funds.csv", "fund_listed_once", gxe.ExpectColumnValuesToBeUnique(column="fund_id"),
              "fund_id", "fund {fund_id} is listed more than once"),
        Check("funds.csv", "frequency_set", gxe.ExpectColumnValuesToBeInSet(column="frequency_set", value_set=[True]),
              "fund_id", "frequency is empty: a {policy} policy needs one of " + ", ".join(FREQUENCIES)),
        Check("funds.csv", "abs_band_valid", gxe.ExpectColumnValuesToBeBetween(column="abs_band", min_value=0, max_value=1),
              "fund_id", "abs_band {value} is not between 0 and 1"),
        Check("funds.csv", "rel_band_valid", gxe.ExpectColumnValuesToBeBetween(column="rel_band", min_value=0),
              "fund_id", "rel_band {value} is negative"),
        Check("funds.csv", "band_set", gxe.ExpectColumnValuesToBeInSet(column="has_band", value_set=[True]),
              "fund_id", "a threshold or hybrid policy needs abs_band or rel_band"),
        Check("funds.csv", "cash_buffer_valid",
              gxe.ExpectColumnValuesToBeBetween(column="cash_buffer", min_value=0, max_value=1, strict_max=True),
              "fund_id", "cash_buffer {value} is not in [0, 1)"),
        Check("funds.csv", "min_trade_valid",
              gxe.ExpectColumnValuesToBeBetween(column="min_trade_notional", min_value=0),
              "fund_id", "min_trade_notional {value} is negative"),
        Check("funds.csv", "allow_fractional_set", gxe.ExpectColumnValuesToNotBeNull(column="allow_fractional"),
              "fund_id", "allow_fractional is not true or false"),
        Check("funds.csv", "fund_has_targets", gxe.ExpectColumnValuesToBeInSet(column="has_targets", value_set=[True]),
              "fund_id", "fund {fund_id} has no rows in targets.csv"),
        Check("funds.csv", "model_or_own_targets",
              gxe.ExpectColumnValuesToBeInSet(column="one_target_source", value_set=[True]),
              "fund_id", "fund {fund_id} has rows in targets.csv and model_id {model_id} in funds.csv: a fund "
                         "follows a model or its own targets, not both"),
        Check("funds.csv", "second_approval_notional_is_number",
              gxe.ExpectColumnValuesToBeInSet(column="second_approval_readable", value_set=[True]),
              "fund_id", "second_approval_notional is not a number (the four-eyes threshold cannot be read)"),
        Check("funds.csv", "second_approval_notional_valid",
              gxe.ExpectColumnValuesToBeBetween(column="second_approval_or_none", min_value=0),
              "fund_id", "second_approval_notional {value} is negative"),
        Check("funds.csv", "harvest_loss_pct_valid",
              gxe.ExpectColumnValuesToBeBetween(column="harvest_loss_pct_or_none", min_value=0, max_value=1,
                                                strict_max=True),
              "fund_id", "harvest_loss_pct {value} is not in [0, 1)"),
        Check("funds.csv", "harvest_min_loss_valid",
              gxe.ExpectColumnValuesToBeBetween(column="harvest_min_loss_or_none", min_value=0),
              "fund_id", "harvest_min_loss {value} is negative"),
        Check("funds.csv", "max_tracking_error_valid",
              gxe.ExpectColumnValuesToBeBetween(column="max_tracking_error_or_none", min_value=0, strict_min=True),
              "fund_id", "max_tracking_error {value} is not positive"),
    ]
    return fund_rows, checks, _etf_checks(gxe, night.frames, funds, night.known_funds)


def _restrictions_rules(gxe, restrictions: pd.DataFrame, night: _Night) -> SuiteRules:
    rule = restrictions["rule"].astype("object").where(restrictions["rule"].notna(), "").astype(str)
    substitute = restrictions["substitute_id"].astype("object").where(
        restrictions["substitute_id"].notna(), "").astype(str).str.strip() if "substitute_id" in restrictions \
        else pd.Series("", index=restrictions.index)
    pair = [restrictions["fund_id"], restrictions["security_id"]]
    pair_rules = ((rule == RULE_EXCLUDE).groupby(pair).transform("any")
                  & (rule == RULE_NO_SELL).groupby(pair).transform("any"))
    rows = restrictions.assign(
        substitute_id=substitute,
        substitute_not_itself=(substitute != restrictions["security_id"]),
        substitute_priced=(substitute == "") | substitute.isin(night.priced) | (rule != RULE_EXCLUDE),
        rules_agree=~pair_rules.astype(bool))
    return rows, [
        Check("restrictions.csv", "restriction_listed_once",
              gxe.ExpectCompoundColumnsToBeUnique(column_list=["fund_id", "security_id", "rule"]),
              "fund_id", "restriction {rule} on {security_id} is listed more than once"),
        Check("restrictions.csv", "substitute_is_another_security",
              gxe.ExpectColumnValuesToBeInSet(column="substitute_not_itself", value_set=[True]),
              "fund_id", "{security_id} is named as its own substitute"),
        Check("restrictions.csv", "substitute_has_price",
              gxe.ExpectColumnValuesToBeInSet(column="substitute_priced", value_set=[True]),
              "fund_id", "substitute {substitute_id} of excluded {security_id} has no row in prices.csv"),
        Check("restrictions.csv", "exclude_and_no_sell_conflict",
              gxe.ExpectColumnValuesToBeInSet(column="rules_agree", value_set=[True]),
              "fund_id", "{security_id} is both excluded (must be sold) and no_sell (may not be sold)"),
    ], {}


def _model_targets_rules(gxe, model_rows: pd.DataFrame, night: _Night) -> SuiteRules:
    model_rows = model_rows.assign(security_is_priced=(model_rows["security_id"] == CASH)
                                   | model_rows["security_id"].isin(night.priced)
                                   | (model_rows["target_weight"].fillna(0) <= 0))
    model_sums = model_rows.groupby("model_id", as_index=False)["target_weight"].sum(min_count=1)
    return model_rows, [
        Check("model_targets.csv", "model_weight_is_number",
              gxe.ExpectColumnValuesToNotBeNull(column="target_weight"),
              "model_id", "model {model_id}: target weight of {security_id} is missing or not a number"),
        Check("model_targets.csv", "model_weight_in_unit_range",
              gxe.ExpectColumnValuesToBeBetween(column="target_weight", min_value=0, max_value=1),
              "model_id", "model {model_id}: target weight {value} of {security_id} is not between 0 and 1"),
        Check("model_targets.csv", "model_security_listed_once",
              gxe.ExpectCompoundColumnsToBeUnique(column_list=["model_id", "security_id"]),
              "model_id", "model {model_id}: {security_id} is listed more than once"),
        Check("model_targets.csv", "model_security_has_price",
              gxe.ExpectColumnValuesToBeInSet(column="security_is_priced", value_set=[True]),
              "model_id", "model {model_id}: targets {security_id}, which has no row in prices.csv"),
    ], {"model_sums": (model_sums.rename(columns={"target_weight": "weight_sum"}), [
        Check("model_targets.csv", "model_weights_sum_to_one",
              gxe.ExpectColumnValuesToBeBetween(column="weight_sum", min_value=1 - TARGET_SUM_TOLERANCE,
                                                max_value=1 + TARGET_SUM_TOLERANCE),
              "model_id", "model {model_id}: weights (CASH included) sum to {value:.6g}, not 1"),
    ])}


def _securities_rules(gxe, securities: pd.DataFrame, night: _Night) -> SuiteRules:
    return securities, [
        Check("securities.csv", "lot_size_positive",
              gxe.ExpectColumnValuesToBeBetween(column="lot_size", min_value=0, strict_min=True),
              "security_id", "{security_id} lot_size {value} is not positive"),
    ], {}


def _index_levels_rules(gxe, levels: pd.DataFrame, night: _Night) -> SuiteRules:
    return levels, [
        Check("index_levels.csv", "level_is_number", gxe.ExpectColumnValuesToNotBeNull(column="level"),
              "model_id", "model {model_id}: index level is missing or not a number"),
        Check("index_levels.csv", "level_positive",
              gxe.ExpectColumnValuesToBeBetween(column="level", min_value=0, strict_min=True),
              "model_id", "model {model_id}: index level {value} is not positive"),
        Check("index_levels.csv", "model_listed_once", gxe.ExpectColumnValuesToBeUnique(column="model_id"),
              "model_id", "model {model_id} has more than one index level"),
    ], {}


def _fund_shares_rules(gxe, shares: pd.DataFrame, night: _Night) -> SuiteRules:
    return shares, [
        Check("fund_shares.csv", "shares_is_number", gxe.ExpectColumnValuesToNotBeNull(column="shares_outstanding"),
              "fund_id", "shares_outstanding is missing or not a number"),
        Check("fund_shares.csv", "shares_positive",
              gxe.ExpectColumnValuesToBeBetween(column="shares_outstanding", min_value=0, strict_min=True),
              "fund_id", "shares_outstanding {value} is not positive"),
        Check("fund_shares.csv", "fund_listed_once", gxe.ExpectColumnValuesToBeUnique(column="fund_id"),
              "fund_id", "fund {fund_id} has more than one shares_outstanding row"),
    ], {}


def _flows_rules(gxe, flows: pd.DataFrame, night: _Night) -> SuiteRules:
    return flows, [
        Check("flows.csv", "amount_is_number", gxe.ExpectColumnValuesToNotBeNull(column="amount"),
              "fund_id", "flow amount is missing or not a number"),
    ], {}


def _fx_rates_rules(gxe, rates: pd.DataFrame, night: _Night) -> SuiteRules:
    return rates, [
        Check("fx_rates.csv", "rate_positive",
              gxe.ExpectColumnValuesToBeBetween(column="rate", min_value=0, strict_min=True),
              "fund_id", "rate {value} for {currency}->{base_currency} is not positive"),
    ], {}


def _creations_rules(gxe, creations: pd.DataFrame, night: _Night) -> SuiteRules:
    funds = night.funds
    unit = (pd.to_numeric(funds.drop_duplicates("fund_id").set_index("fund_id")["creation_unit"], errors="coerce")
            if "creation_unit" in funds and len(funds) else pd.Series(dtype="float64"))
    shares = night.frames.get("fund_shares")
    with_shares = shares.loc[shares["shares_outstanding"] > 0, "fund_id"].unique() if shares is not None else []
    creations = creations.assign(
        has_creation_unit=creations["fund_id"].map(unit).gt(0).fillna(False).astype(bool),
        has_shares=creations["fund_id"].isin(with_shares))
    return creations, [
        Check("creations.csv", "units_is_number", gxe.ExpectColumnValuesToNotBeNull(column="units"),
              "fund_id", "units is missing or not a number"),
        Check("creations.csv", "fund_has_creation_unit",
              gxe.ExpectColumnValuesToBeInSet(column="has_creation_unit", value_set=[True]),
              "fund_id", "fund {fund_id} has creations or redemptions but no creation_unit in funds.csv"),
        Check("creations.csv", "fund_has_shares_outstanding",
              gxe.ExpectColumnValuesToBeInSet(column="has_shares", value_set=[True]),
              "fund_id", "fund {fund_id} has creations or redemptions but no shares_outstanding in "
                         "fund_shares.csv (NAV per share unknown)"),
    ], {}


# The rules of each input that need code, by stem; the declared checks come from the registry.
RULES = {
    "prices": _prices_rules, "positions": _positions_rules, "cash": _cash_rules, "targets": _targets_rules,
    "funds": _funds_rules, "restrictions": _restrictions_rules, "model_targets": _model_targets_rules,
    "securities": _securities_rules, "index_levels": _index_levels_rules, "fund_shares": _fund_shares_rules,
    "flows": _flows_rules, "fx_rates": _fx_rates_rules, "creations": _creations_rules,
}


def _etf_checks(gxe, frames: dict[str, pd.DataFrame], funds: pd.DataFrame,
                known_funds: pd.Index) -> dict[str, tuple[pd.DataFrame, list[Check]]]:
    """funds.csv creation_unit (ETF primary market)."""
    if "creation_unit" not in funds or not len(funds):
        return {}
    unit = pd.to_numeric(funds.drop_duplicates("fund_id").set_index("fund_id")["creation_unit"], errors="coerce")
    return {"fund_terms": (funds.assign(creation_unit_valid=unit.reindex(funds["fund_id"]).isna().to_numpy()
                                        | (unit.reindex(funds["fund_id"]) > 0).to_numpy()), [
        Check("funds.csv", "creation_unit_positive",
              gxe.ExpectColumnValuesToBeInSet(column="creation_unit_valid", value_set=[True]),
              "fund_id", "creation_unit {creation_unit} is not a positive number of shares"),
    ])}


def _price_and_rate_checks(gxe, dataset: str, role: str, verb: str) -> list[Check]:
    """A held or targeted security must have a price, and a rate to the fund's base currency."""
    return [
        Check(dataset, f"{role}_security_has_price",
              gxe.ExpectColumnValuesToBeInSet(column="security_is_priced", value_set=[True]),
              "fund_id", verb + " {security_id}, which has no row in prices.csv"),
        Check(dataset, f"{role}_security_has_fx_rate",
              gxe.ExpectColumnValuesToBeInSet(column="rate_available", value_set=[True]),
              "fund_id", verb + " {security_id}, priced in a currency with no rate to the fund's base in fx_rates.csv"),
    ]


def _rate_available(currency: pd.Series, fund_id: pd.Series, funds: pd.DataFrame,
                    fx_rates: pd.DataFrame | None) -> pd.Series:
    """True where no conversion is needed or fx_rates.csv has a positive rate for the pair."""
    base = fund_id.map(funds.drop_duplicates("fund_id").set_index("fund_id")["base_currency"])
    same = currency.isna() | base.isna() | (currency == base)
    if fx_rates is None or fx_rates.empty:
        return same
    usable = fx_rates[fx_rates["rate"] > 0]
    pairs = pd.MultiIndex.from_arrays([usable["currency"], usable["base_currency"]])
    return same | pd.MultiIndex.from_arrays([currency, base]).isin(pairs)


@dataclass
class _GxSession:
    """What GX needs to run a suite, built once per process: the ephemeral context, its pandas
    datasource, one dataframe asset and batch definition per frame name, and the suites by
    the checks they hold (a suite is the same for every night and shard; only its batch's
    rows differ)."""

    gx: object
    source: object
    batch_definitions: dict = field(default_factory=dict)
    suites: dict = field(default_factory=dict)

    def batch_definition(self, frame_name: str):
        if frame_name not in self.batch_definitions:
            self.batch_definitions[frame_name] = (self.source.add_dataframe_asset(frame_name)
                                                  .add_batch_definition_whole_dataframe("night"))
        return self.batch_definitions[frame_name]

    def suite(self, frame_name: str, checks: list[Check]):
        key = (frame_name, _checks_key(checks))
        if key not in self.suites:
            import great_expectations.expectations as gxe

            suite = self.gx.ExpectationSuite(name=f"rebalance_{frame_name}")
            for index, check in enumerate(checks):
                expectation = check.expectation.to_gx(gxe)
                expectation.meta = {"check_index": index, "check": check.name, "dataset": check.dataset}
                suite.add_expectation(expectation)
            self.suites[key] = suite
        return self.suites[key]


@functools.lru_cache(maxsize=1)
def _gx_session() -> _GxSession:
    """The process's one GX session (imported and created on first use)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import logging

    import great_expectations as gx

    # GX pins one of its loggers at INFO ("created temporary directory ..."): quiet it.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    return _GxSession(gx, context.data_sources.add_pandas("rebalance_landing"))


def _checks_key(checks: list[Check]) -> tuple:
    """What makes two lists of checks the same suite: each check's name, file and expectation
    (its type and arguments)."""
    return tuple((c.dataset, c.name, c.expectation.kind, repr(sorted(c.expectation.kwargs.items())))
                 for c in checks)


@dataclass
class _Checked:
    frame: pd.DataFrame
    checks_key: tuple
    result_rows: list[dict]
    faults: list[pd.DataFrame]
    gx_result: dict | None


@dataclass
class SuiteMemo:
    """The last outcome of each suite, for a caller that validates day after day (the replay):
    a suite whose rows (derived columns included, so every cross-file fact they carry) and
    checks are equal to the last ones it ran gives the same results and faults, so it is not
    run again. Reference data that did not change is so validated on the day it arrives."""

    last: dict[str, _Checked] = field(default_factory=dict)
    reused: int = 0
    ran: int = 0

    def find(self, frame_name: str, frame: pd.DataFrame, checks_key: tuple) -> _Checked | None:
        found = self.last.get(frame_name)
        if found is None or found.checks_key != checks_key or list(found.frame.columns) != list(frame.columns) \
                or not found.frame.dtypes.equals(frame.dtypes) or not found.frame.equals(frame):
            return None
        return found


def validate(frames: dict[str, pd.DataFrame], scope: str = "all", memo: SuiteMemo | None = None,
             record: bool = True) -> ValidationOutcome:
    """Run the suites of ``scope`` (``all``, ``night``: NIGHT_SUITES, ``shard``: the others)
    on an ephemeral GX context; return per-check results and the faults. ``memo``: reuse the
    outcome of a suite whose rows and checks did not change since its last run (``SuiteMemo``).
    ``record=False``: skip each suite's GX result as JSON (``gx_results``, for Data Docs)."""
    if scope not in ("all", "night", "shard"):
        raise ValueError(f"unknown validation scope {scope!r}")
    from rebalance_pipeline.data_docs import compact_result

    result_rows, fault_frames, gx_results = [], [], []
    for frame_name, (frame, checks) in build_checks(frames).items():
        if scope != "all" and (frame_name in NIGHT_SUITES) != (scope == "night"):
            continue
        if frame.empty:
            result_rows += [_result_row(c, True, 0, NO_ROWS) for c in checks]
            continue
        frame = frame.reset_index(drop=True)
        checks_key = _checks_key(checks) if memo is not None else None
        known = memo.find(frame_name, frame, checks_key) if memo is not None else None
        if known is not None and (known.gx_result is not None or not record):
            memo.reused += 1
            result_rows += known.result_rows
            fault_frames += known.faults
            if record:
                gx_results.append(known.gx_result)
            continue
        if not record and all(_passes(check, frame) for check in checks):
            # Every row passes (proven with pandas, with GX's own rule for missing values): GX
            # would report the same success with no failing rows, and no record is wanted.
            suite_rows = [_result_row(check, True, 0, None) for check in checks]
            result_rows += suite_rows
            if memo is not None:
                memo.last[frame_name] = _Checked(frame, checks_key, suite_rows, [], None)
            continue
        session = _gx_session()
        suite = session.suite(frame_name, checks)
        batch = session.batch_definition(frame_name).get_batch(batch_parameters={"dataframe": frame})
        index_columns = [c for c in ("fund_id", "security_id", "model_id", "source_row") if c in frame.columns]
        outcome = batch.validate(suite, result_format={"result_format": "COMPLETE",
                                                       "unexpected_index_column_names": index_columns})
        details, suite_rows, suite_faults = {}, [], []
        for expectation_result in outcome.results:
            check = checks[expectation_result.expectation_config.meta["check_index"]]
            if expectation_result.exception_info and expectation_result.exception_info.get("raised_exception"):
                raise RuntimeError(f"GX check {check.name} on {frame_name} raised: "
                                   f"{expectation_result.exception_info.get('exception_message')}")
            failed = _unexpected_rows(expectation_result.result, frame)
            faults = _faults(check, failed)
            suite_faults.append(faults)
            detail = "; ".join(faults["message"].head(3)) + (" ..." if len(faults) > 3 else "")
            suite_rows.append(_result_row(check, bool(expectation_result.success), len(faults), detail or None))
            details[expectation_result.expectation_config.meta["check_index"]] = detail
        gx_result = ({"suite": suite.name, "result": compact_result(outcome.to_json_dict(), details)}
                     if record else None)
        if record:
            gx_results.append(gx_result)
        result_rows += suite_rows
        fault_frames += suite_faults
        if memo is not None:
            memo.ran += 1
            memo.last[frame_name] = _Checked(frame, checks_key, suite_rows, suite_faults, gx_result)
    faults = pd.concat([f for f in fault_frames if len(f)], ignore_index=True) if any(
        len(f) for f in fault_frames) else empty_faults()
    return ValidationOutcome(pd.DataFrame(result_rows), faults,
                             pd.DataFrame(gx_results, columns=["suite", "result"]))


def _passes(check: Check, frame: pd.DataFrame) -> bool:
    """True when every row of ``frame`` certainly passes ``check``'s expectation, decided with
    vectorized pandas; False when it may fail (or is of a kind not judged here), for GX to
    decide. Like GX's column map expectations, a missing value passes every rule but
    not-null."""
    kind, arguments = check.expectation.kind, check.expectation.kwargs
    if arguments.get("row_condition") or arguments.get("mostly", 1) != 1:
        return False
    if kind == "ExpectCompoundColumnsToBeUnique":
        columns = list(arguments["column_list"])
        return all(c in frame for c in columns) and bool(frame[columns].notna().all(axis=None)) \
            and not frame.duplicated(subset=columns).any()
    column = arguments.get("column")
    if column not in frame:
        return False
    values = frame[column]
    if kind == "ExpectColumnValuesToNotBeNull":
        return bool(values.notna().all())
    present = values.dropna()
    if kind == "ExpectColumnValuesToBeInSet":
        return bool(present.isin(list(arguments["value_set"])).all())
    if kind == "ExpectColumnValuesToBeUnique":
        return not present.duplicated().any()
    if kind == "ExpectColumnValuesToBeBetween":
        if not pd.api.types.is_numeric_dtype(present) or pd.api.types.is_bool_dtype(present):
            return False
        low, high = arguments.get("min_value"), arguments.get("max_value")
        ok = pd.Series(True, index=present.index)
        if low is not None:
            ok &= present > low if arguments.get("strict_min") else present >= low
        if high is not None:
            ok &= present < high if arguments.get("strict_max") else present <= high
        return bool(ok.all())
    return False


def _unexpected_rows(result: dict, frame: pd.DataFrame) -> pd.DataFrame:
    rows = result.get("unexpected_index_list") or []
    if not rows:
        return pd.DataFrame()
    if isinstance(rows[0], dict):
        failed = pd.DataFrame(rows)
        # Compound checks report only their own columns; bring back the row's context.
        if "source_row" in failed.columns:
            # ... and, where rows are told apart by it, every other column (a message may quote any).
            context = frame.drop_duplicates("source_row").set_index("source_row")
            unique = frame["source_row"].is_unique
            for column in (context.columns if unique else ("fund_id", "security_id", "model_id")):
                if column in context.columns and column not in failed.columns:
                    failed[column] = failed["source_row"].map(context[column])
        return failed
    return frame.loc[rows].reset_index(drop=True)


def _faults(check: Check, failed: pd.DataFrame) -> pd.DataFrame:
    if failed.empty:
        return empty_faults()
    column = check.expectation.column
    records = failed.to_dict("records")
    messages = []
    for record in records:
        values = {k: ("" if v is None else v) for k, v in record.items()}
        values["value"] = record.get(column) if column else None
        try:
            messages.append(check.message.format(**values))
        except (KeyError, ValueError, TypeError):
            messages.append(check.message.split("{")[0].strip() or check.name)
    faults = pd.DataFrame({
        "dataset": check.dataset,
        "check": check.name,
        "source_row": failed["source_row"] if "source_row" in failed else None,
        "fund_id": failed["fund_id"] if check.blames == "fund_id" and "fund_id" in failed else None,
        "security_id": failed["security_id"] if "security_id" in failed else None,
        "message": messages,
        "model_id": failed["model_id"] if check.blames == "model_id" and "model_id" in failed else None,
    })
    if check.blames in ("fund_id", "model_id"):
        faults["security_id"] = None
    return faults[FAULT_COLUMNS]


def merge_results(parts: list[ValidationOutcome]) -> pd.DataFrame:
    """One result row per check from the night's and every shard's outcomes: a check passed
    when it passed everywhere; its failed rows add up; the detail quotes the first faults."""
    results = pd.concat([p.results for p in parts], ignore_index=True)
    faults = pd.concat([p.faults for p in parts if len(p.faults)], ignore_index=True) if any(
        len(p.faults) for p in parts) else empty_faults()
    if results.empty:
        return results
    merged = results.groupby(["dataset", "check"], sort=False, as_index=False).agg(
        success=("success", "all"), failed_rows=("failed_rows", "sum"))
    messages = faults.groupby(["dataset", "check"], sort=False)["message"].agg(
        lambda m: "; ".join(m.head(3)) + (" ..." if len(m) > 3 else ""))
    # A check with nothing to check in any part says so; one that passed on rows says nothing.
    no_rows = results["detail"].eq(NO_ROWS).groupby([results["dataset"], results["check"]], sort=False).all()
    passed_detail = no_rows.map({True: NO_ROWS, False: None})
    keys = pd.MultiIndex.from_frame(merged[["dataset", "check"]])
    merged["detail"] = messages.reindex(keys).to_numpy()
    merged["detail"] = merged["detail"].where(merged["detail"].notna(), passed_detail.reindex(keys).to_numpy())
    return merged


def _result_row(check: Check, success: bool, failed_rows: int, detail: str | None) -> dict:
    return {"dataset": check.dataset, "check": check.name, "success": success, "failed_rows": failed_rows,
            "detail": detail}
