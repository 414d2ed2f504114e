"""The input registry: every choice column and id reference checked from its one declaration,
one merge rule for reference files, and the docs table generated from it.

The choice-column cases are derived from the registry: a new choice column is tested here
without a new test (it needs a sample row in ``GOOD_ROWS`` when its file is new).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from conftest import small_landing, write

from rebalance_core.inputs import INPUTS, REGISTRY, choice_columns, merge_reference
from rebalance_pipeline import landing, steps, validation
from rebalance_pipeline.inputs_doc import render_markdown

AS_OF = dt.date(2014, 1, 3)
ROOT = Path(__file__).resolve().parents[1]

# A valid row for each optional file with a choice column (fund F1 of small_landing).
GOOD_ROWS = {
    "restrictions": {"fund_id": "F1", "security_id": "EQ", "rule": "no_buy", "substitute_id": None},
    "creations": {"fund_id": "F1", "units": 1, "settlement": "cash"},
}
CHECKED = [(stem, column) for stem, column in choice_columns() if REGISTRY[stem].suite]


def _frames(root: Path) -> dict[str, pd.DataFrame]:
    frames, _ = landing.read_landing(root, AS_OF)
    return frames


def _with_value(root: Path, stem: str, column: str, value: str) -> Path:
    """small_landing with ``value`` in ``column`` of ``stem``'s first row (F1's)."""
    folder = small_landing(root, AS_OF)
    path = folder / f"{stem}.csv"
    rows = pd.read_csv(path, dtype=str) if path.exists() else pd.DataFrame([GOOD_ROWS[stem]])
    rows[column] = rows[column].astype(object) if column in rows else None
    rows.loc[0, column] = value
    write(folder, f"{stem}.csv", rows)
    return root


@pytest.mark.parametrize(("stem", "column"), CHECKED, ids=[f"{s}.{c.name}" for s, c in CHECKED])
def test_a_bad_choice_blocks_the_fund_with_file_row_column_and_value(tmp_path, stem, column):
    root = _with_value(tmp_path / "landing", stem, column.name, "bogus")
    outcome = validation.validate(_frames(root))
    faults = outcome.faults[(outcome.faults["check"] == column.choice_check)]
    assert faults[["dataset", "source_row", "fund_id"]].values.tolist() == [[f"{stem}.csv", 2, "F1"]]
    assert faults["message"].iloc[0].startswith(f"{column.name} 'bogus' is not one of ")
    result = outcome.results.set_index("check").loc[column.choice_check]
    assert not result["success"] and "'bogus'" in result["detail"]


@pytest.mark.parametrize(("stem", "column"), CHECKED, ids=[f"{s}.{c.name}" for s, c in CHECKED])
def test_a_choice_in_another_case_reads_as_declared_and_passes(tmp_path, stem, column):
    declared = column.choices[-1]
    root = _with_value(tmp_path / "landing", stem, column.name, f"  {declared.upper()} ")
    frames = _frames(root)
    assert frames[stem][column.name].iloc[0] == declared
    faults = validation.validate(frames).faults
    assert not (faults["check"] == column.choice_check).any()


def test_tax_lot_method_fifo_is_fifo_and_a_typo_blocks_instead_of_becoming_hifo(tmp_path):
    frames = _frames(_with_value(tmp_path / "a", "funds", "tax_lot_method", "FIFO"))
    assert frames["funds"].set_index("fund_id")["tax_lot_method"].to_dict() == {"F1": "fifo", "F2": None, "F3": None}
    faults = validation.validate(_frames(_with_value(tmp_path / "b", "funds", "tax_lot_method", "fifi"))).faults
    from rebalance_core.faults import blocked_funds

    frames = _frames(tmp_path / "b")
    blocked = blocked_funds(faults, frames["positions"], frames["targets"], frames["funds"])
    assert blocked.values.tolist() == [
        ["F1", "funds.csv row 2: tax_lot_method 'fifi' is not one of hifo, fifo, min_gain"]]


def test_an_unknown_exchange_calendar_blocks_its_fund_and_a_known_one_passes(tmp_path):
    """funds.csv ``calendar`` names an exchange_calendars calendar: a typo would otherwise fail
    the night's date arithmetic for every fund (calendar periods, an approval's expiry)."""
    from rebalance_core.faults import blocked_funds

    for value, expected in (("XLON", []), ("XNYSS", [
            ["F1", "funds.csv row 2: calendar 'XNYSS' is not a known calendar (not in the exchange calendars of "
                   "exchange_calendars, e.g. XNYS, XLON, XTKS)"]])):
        root = _with_value(tmp_path / value, "funds", "calendar", value)
        frames = _frames(root)
        faults = validation.validate(frames).faults
        blocked = blocked_funds(faults, frames["positions"], frames["targets"], frames["funds"])
        assert blocked.values.tolist() == expected, value


def test_a_restriction_on_an_unknown_security_blocks_the_fund_in_the_night(engine, landing):
    folder = small_landing(landing, AS_OF)
    write(folder, "restrictions.csv", [{"fund_id": "F1", "security_id": "EQ", "rule": "no_buy", "substitute_id": ""},
                                       {"fund_id": "F2", "security_id": "NOPE", "rule": "exclude",
                                        "substitute_id": ""}])
    write(folder, "substitutes.csv", [{"security_id": "EQ", "substitute_id": "GHOST", "rank": 1}])
    steps.run_nightly(AS_OF, landing, engine)
    with engine.connect() as conn:
        summary = pd.read_sql("SELECT fund_id, status, blocked_reason FROM rebalance.fund_summary",
                              conn).set_index("fund_id")
        results = pd.read_sql("SELECT dataset, \"check\", success, failed_rows, detail FROM "
                              "rebalance.validation_result WHERE NOT success", conn)
    # The exclusion a wealth manager believes in is not in force: the fund waits, and says why.
    assert summary.loc["F2", "status"] == "blocked"
    assert ("restrictions.csv row 3: security_id 'NOPE' is not a known security (not in prices.csv or "
            "securities.csv)") in summary.loc["F2", "blocked_reason"]
    # A substitute that does not exist blocks the funds exposed to the security it stands in for.
    assert ("substitutes.csv row 2: substitute_id 'GHOST' is not a known security"
            in summary.loc["F1", "blocked_reason"])
    assert summary.loc["F3", "status"] != "blocked"
    failed = results.set_index(["dataset", "check"])
    assert failed.loc[("restrictions.csv", "security_id_exists"), "failed_rows"] == 1
    assert "'NOPE'" in failed.loc[("restrictions.csv", "security_id_exists"), "detail"]
    assert failed.loc[("substitutes.csv", "substitute_id_exists"), "failed_rows"] == 1


def test_a_flow_of_a_fund_not_in_funds_csv_is_caught(tmp_path):
    folder = small_landing(tmp_path / "landing", AS_OF)
    write(folder, "flows.csv", [{"fund_id": "F1", "amount": 10.0}, {"fund_id": "GONE", "amount": 5.0}])
    faults = validation.validate(_frames(tmp_path / "landing")).faults
    rows = faults[faults["dataset"] == "flows.csv"]
    assert rows[["check", "source_row", "fund_id"]].values.tolist() == [["fund_id_exists", 3, "GONE"]]


def test_a_reference_version_replaces_only_the_keys_it_lists():
    in_force = pd.DataFrame({"fund_id": ["A", "B", "C"], "policy": ["threshold"] * 3})
    version = pd.DataFrame({"fund_id": ["B"], "policy": ["calendar"]})
    merged = merge_reference("funds", in_force, version).set_index("fund_id")["policy"].to_dict()
    assert merged == {"A": "threshold", "B": "calendar", "C": "threshold"}
    assert merge_reference("funds", in_force, None) is in_force
    # restrictions merge by fund: a fund's new version replaces all its rows.
    rules = pd.DataFrame({"fund_id": ["A", "A", "B"], "security_id": ["X", "Y", "X"], "rule": "no_buy"})
    new = pd.DataFrame({"fund_id": ["A"], "security_id": ["Z"], "rule": "exclude"})
    assert sorted(map(tuple, merge_reference("restrictions", rules, new)[["fund_id", "security_id"]].to_numpy())) \
        == [("A", "Z"), ("B", "X")]


def test_every_input_is_declared_once_and_derived_everywhere():
    from rebalance_pipeline import publish, warehouse

    assert len({f.stem for f in INPUTS}) == len(INPUTS)
    assert set(landing.SPECS) == set(REGISTRY)
    assert set(warehouse.REFERENCE_TABLES) == {f.stem for f in INPUTS if f.reference}
    assert set(publish.REFERENCE_INPUTS) | set(publish.DAILY_INPUTS) == set(REGISTRY)
    assert set(steps.REFERENCE_STEMS) == set(warehouse.REFERENCE_TABLES)
    for spec in INPUTS:   # every declared reference file merges by a key column it has
        if spec.reference:
            assert spec.merge_key in [c.name for c in spec.columns]


def test_the_docs_table_of_inputs_is_up_to_date():
    committed = (ROOT / "docs" / "reference" / "inputs.md").read_text()
    assert committed == render_markdown(), (
        "docs/reference/inputs.md is stale: python -m rebalance_pipeline.inputs_doc > docs/reference/inputs.md")
