"""The validation suites, registered by input: what each landing file is checked for.

Each input's suite is its declared checks (every choice column's values and every id
reference, from the input registry ``rebalance_core.inputs``) plus the few rules that need
code (ranges, sums, cross-file facts), registered by input in ``RULES``. A check is a Great
Expectations expectation by class name and arguments (``Expectation``): building the suites
needs no GX import; ``rebalance_pipeline.validation`` runs them.

Cross-file rules (a held security with no price, a fund with no targets) are computed as a
boolean column per row with pandas and asserted by GX, so the failing rows keep their file
and row number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rebalance_core.inputs import INPUTS, NIGHT
from rebalance_core.models import fund_models
from rebalance_core.schema import CASH, FREQUENCIES, POLICIES, RULE_EXCLUDE, RULE_NO_SELL
from rebalance_pipeline.validation_checks import (
    TARGET_SUM_TOLERANCE,
    Check,
    SuiteRules,
    _declared_checks,
    _expectations,
    _Night,
)

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
