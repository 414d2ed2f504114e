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

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rebalance_core.faults import FAULT_COLUMNS, empty_faults
from rebalance_core.models import fund_models
from rebalance_core.schema import (
    BAND_LEVELS,
    CASH,
    COMPLIANCE_REGIMES,
    FREQUENCIES,
    POLICIES,
    REBALANCE_TO,
    RESTRICTION_RULES,
    RULE_EXCLUDE,
    RULE_NO_SELL,
    SETTLEMENTS,
    WASH_SALE_RULES,
)

NO_ROWS = "no rows to check"
# restrictions.csv: ``none`` lifts a fund's restrictions (a version replaces all its rows).
RESTRICTION_RULES_ACCEPTED = (*RESTRICTION_RULES, "none")
# Target weights of a fund (its CASH row included) must sum to 1 within this tolerance.
TARGET_SUM_TOLERANCE = 1e-6


@dataclass
class Check:
    dataset: str                 # file (or derived view) the rows come from
    name: str                    # short, stable name stored in validation_result.check
    expectation: object          # a great_expectations.expectations.Expectation
    blames: str                  # "fund_id", "security_id" or "model_id"
    message: str                 # str.format template over the failing row's columns ({value}: the column)


@dataclass
class ValidationOutcome:
    results: pd.DataFrame        # one row per check: dataset, check, success, failed_rows, detail
    faults: pd.DataFrame         # one row per failing input row (FAULT_COLUMNS)
    # suite, result: each suite's GX validation result as JSON (rebalance_pipeline.data_docs.compact_result),
    # kept with the night for its Data Docs
    gx_results: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["suite", "result"]))


def _expectations():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations.expectations as gxe

    return gxe


# Suites whose rows are about securities or currencies, not funds: a fault there touches
# every fund exposed to it, so they run once per night; the others run shard by shard on
# the shard's funds (a fund's rows are all in its shard) and give the same faults.
NIGHT_SUITES = ("prices", "securities", "fx_rates", "model_targets", "model_sums", "index_levels")


def build_checks(frames: dict[str, pd.DataFrame]) -> dict[str, tuple[pd.DataFrame, list[Check]]]:
    """The frames to validate and their checks, keyed by frame name."""
    gxe = _expectations()
    funds = frames.get("funds", pd.DataFrame(columns=["fund_id"]))
    prices = frames["prices"]
    targets = frames.get("targets", pd.DataFrame(columns=["fund_id", "security_id", "target_weight", "source_row"]))
    known_funds = pd.Index(funds["fund_id"].unique())
    # A fund that follows a model is judged on its model (the model suites); rows of its own
    # left in the history from before it joined the model no longer apply to it.
    if len(funds) and len(targets):
        followers = fund_models(funds).dropna().index
        targets = targets[~targets["fund_id"].isin(followers)]
    priced = pd.Index(prices["security_id"].unique())
    suites: dict[str, tuple[pd.DataFrame, list[Check]]] = {}

    suites["prices"] = (prices, [
        Check("prices.csv", "close_price_is_number", gxe.ExpectColumnValuesToNotBeNull(column="close_price"),
              "security_id", "{security_id} has no price or a price that is not a number"),
        Check("prices.csv", "close_price_positive",
              gxe.ExpectColumnValuesToBeBetween(column="close_price", min_value=0, strict_min=True),
              "security_id", "{security_id} price {value} is not positive"),
        Check("prices.csv", "security_priced_once", gxe.ExpectColumnValuesToBeUnique(column="security_id"),
              "security_id", "{security_id} is priced more than once"),
    ])

    # Cross-file rules become a boolean column per row, checked by GX: a value_set of
    # thousands of ids inside an expectation makes GX itself slow (it copies its config).
    positions = frames["positions"].assign(fund_is_known=lambda f: f["fund_id"].isin(known_funds))
    held = positions[positions["quantity"].fillna(0) > 0]
    security_currency = prices.drop_duplicates("security_id").set_index("security_id")["currency"]

    def with_price_and_rate(rows: pd.DataFrame) -> pd.DataFrame:
        return rows.assign(security_is_priced=rows["security_id"].isin(priced),
                           rate_available=_rate_available(rows["security_id"].map(security_currency),
                                                          rows["fund_id"], funds, frames.get("fx_rates")))

    held = with_price_and_rate(held)
    suites["positions"] = (positions, [
        Check("positions.csv", "quantity_is_number", gxe.ExpectColumnValuesToNotBeNull(column="quantity"),
              "fund_id", "quantity of {security_id} is missing or not a number"),
        Check("positions.csv", "quantity_not_negative",
              gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=0),
              "fund_id", "quantity {value} of {security_id} is negative"),
        Check("positions.csv", "fund_is_known", gxe.ExpectColumnValuesToBeInSet(column="fund_is_known", value_set=[True]),
              "fund_id", "fund {fund_id} holds positions but is not in funds.csv"),
    ])
    suites["held"] = (held, _price_and_rate_checks(gxe, "positions.csv", "held", "holds"))

    cash = frames["cash"].assign(fund_is_known=lambda f: f["fund_id"].isin(known_funds))
    cash = cash.assign(rate_available=_rate_available(cash["currency"], cash["fund_id"], funds, frames.get("fx_rates")))
    suites["cash"] = (cash, [
        Check("cash.csv", "amount_is_number", gxe.ExpectColumnValuesToNotBeNull(column="amount"),
              "fund_id", "cash amount is missing or not a number"),
        Check("cash.csv", "fund_is_known", gxe.ExpectColumnValuesToBeInSet(column="fund_is_known", value_set=[True]),
              "fund_id", "fund {fund_id} has cash but is not in funds.csv"),
        Check("cash.csv", "cash_has_fx_rate", gxe.ExpectColumnValuesToBeInSet(column="rate_available", value_set=[True]),
              "fund_id", "cash in a currency with no rate to the fund's base in fx_rates.csv"),
    ])

    security_targets = targets[(targets["security_id"] != CASH) & (targets["target_weight"].fillna(0) > 0)]
    security_targets = with_price_and_rate(security_targets)
    sums = targets.groupby("fund_id", as_index=False)["target_weight"].sum(min_count=1)
    sums = sums[sums["fund_id"].isin(known_funds)]
    suites["targets"] = (targets, [
        Check("targets.csv", "weight_is_number", gxe.ExpectColumnValuesToNotBeNull(column="target_weight"),
              "fund_id", "target weight of {security_id} is missing or not a number"),
        Check("targets.csv", "weight_in_unit_range",
              gxe.ExpectColumnValuesToBeBetween(column="target_weight", min_value=0, max_value=1),
              "fund_id", "target weight {value} of {security_id} is not between 0 and 1"),
        Check("targets.csv", "security_targeted_once",
              gxe.ExpectCompoundColumnsToBeUnique(column_list=["fund_id", "security_id"]),
              "fund_id", "{security_id} is targeted more than once"),
    ])
    suites["targeted"] = (security_targets, _price_and_rate_checks(gxe, "targets.csv", "targeted", "targets"))
    suites["target_sums"] = (sums.rename(columns={"target_weight": "weight_sum"}), [
        Check("targets.csv", "weights_sum_to_one",
              gxe.ExpectColumnValuesToBeBetween(column="weight_sum", min_value=1 - TARGET_SUM_TOLERANCE,
                                                max_value=1 + TARGET_SUM_TOLERANCE),
              "fund_id", "target weights (CASH included) sum to {value:.6g}, not 1"),
    ])

    # Models: the versions in force tonight (frames["model_targets"]); funds name them.
    model_rows = frames.get("model_targets")
    known_models = set(model_rows["model_id"]) if model_rows is not None else set()
    followed = fund_models(funds) if len(funds) else pd.Series(dtype="object")
    in_file = set(frames["file_targets"]["fund_id"]) if frames.get("file_targets") is not None else set()
    fund_rows = funds.assign(
        model_id=funds["fund_id"].map(followed),
        has_targets=funds["fund_id"].isin(set(targets["fund_id"])) | funds["fund_id"].map(followed).notna(),
        model_known=funds["fund_id"].map(followed).isna() | funds["fund_id"].map(followed).isin(known_models),
        one_target_source=~(funds["fund_id"].map(followed).notna() & funds["fund_id"].isin(in_file)),
        band_level_or_default=(funds["band_level"].fillna("security") if "band_level" in funds else "security"),
        wash_sale_rule_or_default=(funds["wash_sale_rule"].fillna("flag").astype(str).str.strip().str.lower()
                                   if "wash_sale_rule" in funds else "flag"),
        harvest_loss_pct_or_none=(funds["harvest_loss_pct"] if "harvest_loss_pct" in funds else None),
        harvest_min_loss_or_none=(funds["harvest_min_loss"] if "harvest_min_loss" in funds else None),
        has_band=funds[["abs_band", "rel_band"]].notna().any(axis=1) | (funds["policy"] == "calendar")
        | (funds["rebalance_to"] == "vanguard"),
        frequency_or_none=funds["frequency"].where(funds["policy"] != "threshold", "daily"),
        compliance_or_none=_lowered(funds["compliance"]) if "compliance" in funds else None,
        max_tracking_error_or_none=funds["max_tracking_error"] if "max_tracking_error" in funds else np.nan,
        # Four eyes: text that is not a number must block the fund, not switch the control off.
        second_approval_readable=(funds["second_approval_notional_readable"].astype("boolean").fillna(True)
                                  .astype(bool) if "second_approval_notional_readable" in funds else True),
        second_approval_or_none=(funds["second_approval_notional"] if "second_approval_notional" in funds
                                 else float("nan")),
    ) if len(funds) else funds
    suites["funds"] = (fund_rows, [
        Check("funds.csv", "fund_listed_once", gxe.ExpectColumnValuesToBeUnique(column="fund_id"),
              "fund_id", "fund {fund_id} is listed more than once"),
        Check("funds.csv", "policy_set", gxe.ExpectColumnValuesToNotBeNull(column="policy"),
              "fund_id", "policy is empty"),
        Check("funds.csv", "rebalance_to_set", gxe.ExpectColumnValuesToNotBeNull(column="rebalance_to"),
              "fund_id", "rebalance_to is empty"),
        Check("funds.csv", "policy_known", gxe.ExpectColumnValuesToBeInSet(column="policy", value_set=list(POLICIES)),
              "fund_id", "policy {value!r} is not one of " + ", ".join(POLICIES)),
        Check("funds.csv", "frequency_known",
              gxe.ExpectColumnValuesToBeInSet(column="frequency_or_none", value_set=list(FREQUENCIES)),
              "fund_id", "frequency {value!r} is not one of " + ", ".join(FREQUENCIES)),
        Check("funds.csv", "rebalance_to_known",
              gxe.ExpectColumnValuesToBeInSet(column="rebalance_to", value_set=list(REBALANCE_TO)),
              "fund_id", "rebalance_to {value!r} is not one of " + ", ".join(REBALANCE_TO)),
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
        Check("funds.csv", "model_is_defined", gxe.ExpectColumnValuesToBeInSet(column="model_known", value_set=[True]),
              "fund_id", "model_id {model_id} is not defined by any model_targets.csv (no version in force on this "
                         "date)"),
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
        Check("funds.csv", "band_level_known",
              gxe.ExpectColumnValuesToBeInSet(column="band_level_or_default", value_set=list(BAND_LEVELS)),
              "fund_id", "band_level {value!r} is not one of " + ", ".join(BAND_LEVELS)),
        Check("funds.csv", "wash_sale_rule_known",
              gxe.ExpectColumnValuesToBeInSet(column="wash_sale_rule_or_default", value_set=list(WASH_SALE_RULES)),
              "fund_id", "wash_sale_rule {value!r} is not one of " + ", ".join(WASH_SALE_RULES)),
        Check("funds.csv", "harvest_loss_pct_valid",
              gxe.ExpectColumnValuesToBeBetween(column="harvest_loss_pct_or_none", min_value=0, max_value=1,
                                                strict_max=True),
              "fund_id", "harvest_loss_pct {value} is not in [0, 1)"),
        Check("funds.csv", "harvest_min_loss_valid",
              gxe.ExpectColumnValuesToBeBetween(column="harvest_min_loss_or_none", min_value=0),
              "fund_id", "harvest_min_loss {value} is negative"),
        Check("funds.csv", "compliance_known",
              gxe.ExpectColumnValuesToBeInSet(column="compliance_or_none", value_set=list(COMPLIANCE_REGIMES)),
              "fund_id", "compliance {value!r} is not one of " + ", ".join(COMPLIANCE_REGIMES)),
        Check("funds.csv", "max_tracking_error_valid",
              gxe.ExpectColumnValuesToBeBetween(column="max_tracking_error_or_none", min_value=0, strict_min=True),
              "fund_id", "max_tracking_error {value} is not positive"),
    ])

    restrictions = frames.get("restrictions")
    if restrictions is not None and len(restrictions):
        rule = restrictions["rule"].astype("object").where(restrictions["rule"].notna(), "").astype(str)
        rule = rule.str.strip().str.lower()
        substitute = restrictions["substitute_id"].astype("object").where(
            restrictions["substitute_id"].notna(), "").astype(str).str.strip() if "substitute_id" in restrictions \
            else pd.Series("", index=restrictions.index)
        pair = [restrictions["fund_id"], restrictions["security_id"]]
        pair_rules = ((rule == RULE_EXCLUDE).groupby(pair).transform("any")
                      & (rule == RULE_NO_SELL).groupby(pair).transform("any"))
        restriction_rows = restrictions.assign(
            rule=rule, substitute_id=substitute,
            substitute_not_itself=(substitute != restrictions["security_id"]),
            substitute_priced=(substitute == "") | substitute.isin(priced) | (rule != RULE_EXCLUDE),
            rules_agree=~pair_rules.astype(bool))
        suites["restrictions"] = (restriction_rows, [
            Check("restrictions.csv", "rule_known",
                  gxe.ExpectColumnValuesToBeInSet(column="rule", value_set=list(RESTRICTION_RULES_ACCEPTED)),
                  "fund_id", "restriction rule {value!r} on {security_id} is not one of "
                  + ", ".join(RESTRICTION_RULES_ACCEPTED)),
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
        ])

    if model_rows is not None:
        model_rows = model_rows.assign(security_is_priced=(model_rows["security_id"] == CASH)
                                       | model_rows["security_id"].isin(priced)
                                       | (model_rows["target_weight"].fillna(0) <= 0))
        model_sums = model_rows.groupby("model_id", as_index=False)["target_weight"].sum(min_count=1)
        suites["model_targets"] = (model_rows, [
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
        ])
        suites["model_sums"] = (model_sums.rename(columns={"target_weight": "weight_sum"}), [
            Check("model_targets.csv", "model_weights_sum_to_one",
                  gxe.ExpectColumnValuesToBeBetween(column="weight_sum", min_value=1 - TARGET_SUM_TOLERANCE,
                                                    max_value=1 + TARGET_SUM_TOLERANCE),
                  "model_id", "model {model_id}: weights (CASH included) sum to {value:.6g}, not 1"),
        ])

    if "securities" in frames:
        suites["securities"] = (frames["securities"], [
            Check("securities.csv", "lot_size_positive",
                  gxe.ExpectColumnValuesToBeBetween(column="lot_size", min_value=0, strict_min=True),
                  "security_id", "{security_id} lot_size {value} is not positive"),
        ])
    if "index_levels" in frames:
        suites["index_levels"] = (frames["index_levels"], [
            Check("index_levels.csv", "level_is_number", gxe.ExpectColumnValuesToNotBeNull(column="level"),
                  "model_id", "model {model_id}: index level is missing or not a number"),
            Check("index_levels.csv", "level_positive",
                  gxe.ExpectColumnValuesToBeBetween(column="level", min_value=0, strict_min=True),
                  "model_id", "model {model_id}: index level {value} is not positive"),
            Check("index_levels.csv", "model_listed_once", gxe.ExpectColumnValuesToBeUnique(column="model_id"),
                  "model_id", "model {model_id} has more than one index level"),
        ])
    if "fund_shares" in frames:
        suites["fund_shares"] = (frames["fund_shares"], [
            Check("fund_shares.csv", "shares_is_number", gxe.ExpectColumnValuesToNotBeNull(column="shares_outstanding"),
                  "fund_id", "shares_outstanding is missing or not a number"),
            Check("fund_shares.csv", "shares_positive",
                  gxe.ExpectColumnValuesToBeBetween(column="shares_outstanding", min_value=0, strict_min=True),
                  "fund_id", "shares_outstanding {value} is not positive"),
            Check("fund_shares.csv", "fund_listed_once", gxe.ExpectColumnValuesToBeUnique(column="fund_id"),
                  "fund_id", "fund {fund_id} has more than one shares_outstanding row"),
        ])
    if "flows" in frames:
        suites["flows"] = (frames["flows"], [
            Check("flows.csv", "amount_is_number", gxe.ExpectColumnValuesToNotBeNull(column="amount"),
                  "fund_id", "flow amount is missing or not a number"),
        ])
    suites.update(_etf_checks(gxe, frames, funds, known_funds))
    if "fx_rates" in frames:
        suites["fx_rates"] = (frames["fx_rates"], [
            Check("fx_rates.csv", "rate_positive",
                  gxe.ExpectColumnValuesToBeBetween(column="rate", min_value=0, strict_min=True),
                  "fund_id", "rate {value} for {currency}->{base_currency} is not positive"),
        ])
    return suites


def _lowered(values: pd.Series) -> pd.Series:
    """Text lower-cased and stripped; empty cells None (the column's default applies)."""
    text = values.astype(object).where(values.notna(), "").astype(str).str.strip().str.lower()
    return text.where(text != "", None).astype(object)


def _etf_checks(gxe, frames: dict[str, pd.DataFrame], funds: pd.DataFrame,
                known_funds: pd.Index) -> dict[str, tuple[pd.DataFrame, list[Check]]]:
    """creations.csv, fund_shares.csv and funds.csv creation_unit (ETF primary market)."""
    suites: dict[str, tuple[pd.DataFrame, list[Check]]] = {}
    unit = (pd.to_numeric(funds.drop_duplicates("fund_id").set_index("fund_id")["creation_unit"], errors="coerce")
            if "creation_unit" in funds and len(funds) else pd.Series(dtype="float64"))
    shares = frames.get("fund_shares")
    with_shares = set(shares.loc[shares["shares_outstanding"] > 0, "fund_id"]) if shares is not None else set()
    if "creation_unit" in funds and len(funds):
        suites["fund_terms"] = (funds.assign(creation_unit_valid=unit.reindex(funds["fund_id"]).isna().to_numpy()
                                             | (unit.reindex(funds["fund_id"]) > 0).to_numpy()), [
            Check("funds.csv", "creation_unit_positive",
                  gxe.ExpectColumnValuesToBeInSet(column="creation_unit_valid", value_set=[True]),
                  "fund_id", "creation_unit {creation_unit} is not a positive number of shares"),
        ])
    creations = frames.get("creations")
    if creations is not None:
        settlement = creations["settlement"].astype("object").where(creations["settlement"].notna(), "")
        creations = creations.assign(
            settlement_or_blank=settlement.astype(str).str.strip().str.lower(),
            fund_is_known=creations["fund_id"].isin(known_funds),
            has_creation_unit=creations["fund_id"].map(unit).gt(0).fillna(False).astype(bool),
            has_shares=creations["fund_id"].isin(with_shares))
        suites["creations"] = (creations, [
            Check("creations.csv", "units_is_number", gxe.ExpectColumnValuesToNotBeNull(column="units"),
                  "fund_id", "units is missing or not a number"),
            Check("creations.csv", "settlement_known",
                  gxe.ExpectColumnValuesToBeInSet(column="settlement_or_blank", value_set=list(SETTLEMENTS)),
                  "fund_id", "settlement {value!r} is not one of " + ", ".join(SETTLEMENTS)),
            Check("creations.csv", "fund_is_known",
                  gxe.ExpectColumnValuesToBeInSet(column="fund_is_known", value_set=[True]),
                  "fund_id", "fund {fund_id} has creations or redemptions but is not in funds.csv"),
            Check("creations.csv", "fund_has_creation_unit",
                  gxe.ExpectColumnValuesToBeInSet(column="has_creation_unit", value_set=[True]),
                  "fund_id", "fund {fund_id} has creations or redemptions but no creation_unit in funds.csv"),
            Check("creations.csv", "fund_has_shares_outstanding",
                  gxe.ExpectColumnValuesToBeInSet(column="has_shares", value_set=[True]),
                  "fund_id", "fund {fund_id} has creations or redemptions but no shares_outstanding in "
                             "fund_shares.csv (NAV per share unknown)"),
        ])
    return suites


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


def validate(frames: dict[str, pd.DataFrame], scope: str = "all") -> ValidationOutcome:
    """Run the suites of ``scope`` (``all``, ``night``: NIGHT_SUITES, ``shard``: the others)
    on an ephemeral GX context; return per-check results and the faults."""
    if scope not in ("all", "night", "shard"):
        raise ValueError(f"unknown validation scope {scope!r}")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import logging

    import great_expectations as gx

    # GX pins one of its loggers at INFO ("created temporary directory ..."): quiet it.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    source = context.data_sources.add_pandas("rebalance_landing")
    from rebalance_pipeline.data_docs import compact_result

    result_rows, fault_frames, gx_results = [], [], []
    for frame_name, (frame, checks) in build_checks(frames).items():
        if scope != "all" and (frame_name in NIGHT_SUITES) != (scope == "night"):
            continue
        if frame.empty:
            result_rows += [_result_row(c, True, 0, NO_ROWS) for c in checks]
            continue
        frame = frame.reset_index(drop=True)
        suite = gx.ExpectationSuite(name=f"rebalance_{frame_name}")
        for index, check in enumerate(checks):
            check.expectation.meta = {"check_index": index, "check": check.name, "dataset": check.dataset}
            suite.add_expectation(check.expectation)
        batch = (source.add_dataframe_asset(frame_name)
                 .add_batch_definition_whole_dataframe("night")
                 .get_batch(batch_parameters={"dataframe": frame}))
        index_columns = [c for c in ("fund_id", "security_id", "model_id", "source_row") if c in frame.columns]
        outcome = batch.validate(suite, result_format={"result_format": "COMPLETE",
                                                       "unexpected_index_column_names": index_columns})
        details = {}
        for expectation_result in outcome.results:
            check = checks[expectation_result.expectation_config.meta["check_index"]]
            if expectation_result.exception_info and expectation_result.exception_info.get("raised_exception"):
                raise RuntimeError(f"GX check {check.name} on {frame_name} raised: "
                                   f"{expectation_result.exception_info.get('exception_message')}")
            failed = _unexpected_rows(expectation_result.result, frame)
            faults = _faults(check, failed)
            fault_frames.append(faults)
            detail = "; ".join(faults["message"].head(3)) + (" ..." if len(faults) > 3 else "")
            result_rows.append(_result_row(check, bool(expectation_result.success), len(faults), detail or None))
            details[expectation_result.expectation_config.meta["check_index"]] = detail
        gx_results.append({"suite": suite.name, "result": compact_result(outcome.to_json_dict(), details)})
    faults = pd.concat([f for f in fault_frames if len(f)], ignore_index=True) if any(
        len(f) for f in fault_frames) else empty_faults()
    return ValidationOutcome(pd.DataFrame(result_rows), faults,
                             pd.DataFrame(gx_results, columns=["suite", "result"]))


def _unexpected_rows(result: dict, frame: pd.DataFrame) -> pd.DataFrame:
    rows = result.get("unexpected_index_list") or []
    if not rows:
        return pd.DataFrame()
    if isinstance(rows[0], dict):
        failed = pd.DataFrame(rows)
        # Compound checks report only their own columns; bring back the row's context.
        if "source_row" in failed.columns:
            context = frame.set_index("source_row")
            for column in ("fund_id", "security_id", "model_id"):
                if column in context.columns and column not in failed.columns:
                    failed[column] = failed["source_row"].map(context[column])
        return failed
    return frame.loc[rows].reset_index(drop=True)


def _faults(check: Check, failed: pd.DataFrame) -> pd.DataFrame:
    if failed.empty:
        return empty_faults()
    column = getattr(check.expectation, "column", None)
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
