"""The vocabulary of validation: a check (``Check``: a Great Expectations expectation by class
name and arguments, what it blames and what it says), the facts of the night the checks read
(``_Night``), and the checks the input registry declares for a file (every choice column's
values and every id reference, ``rebalance_core.inputs``). The rules that need code are in
``rebalance_pipeline.validation_suites``; ``rebalance_pipeline.validation`` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from rebalance_core.inputs import CALENDAR, FUND, MODEL, SECURITY, UNIVERSES, InputFile
from rebalance_core.models import fund_models

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
