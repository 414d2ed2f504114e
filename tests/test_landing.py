"""Structural faults: the night stops with file, row and column, and nothing is written."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import small_landing, write

from rebalance_pipeline import landing as landing_reader
from rebalance_pipeline.landing import StructuralError

AS_OF = dt.date(2014, 1, 3)


def read(root):
    return landing_reader.read_landing(root, AS_OF)


def test_a_good_folder_reads_typed(landing):
    small_landing(landing)
    frames, sources = read(landing)
    assert sources["prices"] == "prices.csv"
    assert frames["positions"]["quantity"].dtype == "float64"
    assert frames["positions"]["source_row"].tolist() == [2, 3, 4, 5, 6]   # header is row 1
    assert frames["funds"]["allow_fractional"].tolist() == [False, False, False]
    assert set(frames["prices"]["as_of_date"]) == {AS_OF}


def test_missing_required_file(landing):
    folder = small_landing(landing)
    (folder / "cash.csv").unlink()
    with pytest.raises(StructuralError, match=r"cash\.csv: required file is missing"):
        read(landing)


def test_missing_date_folder(landing):
    small_landing(landing)
    with pytest.raises(StructuralError, match="landing folder for this date does not exist"):
        landing_reader.read_landing(landing, dt.date(2014, 1, 6))


def test_missing_required_column_names_file_row_and_column(landing):
    folder = small_landing(landing)
    prices = pd.read_csv(folder / "prices.csv").drop(columns=["close_price"])
    write(folder, "prices.csv", prices)
    with pytest.raises(StructuralError) as info:
        read(landing)
    assert (info.value.file, info.value.row, info.value.column) == ("prices.csv", 1, "close_price")
    assert "prices.csv, row 1, column 'close_price': required column is missing" in str(info.value)


def test_unparseable_row_names_its_row_and_column(landing):
    folder = small_landing(landing)
    with (folder / "positions.csv").open("a") as handle:
        handle.write("2014-01-03,F1,EQ,10,surplus\n")
    with pytest.raises(StructuralError) as info:
        read(landing)
    assert info.value.file == "positions.csv" and info.value.row == 7
    assert "beyond the header" in info.value.column


def test_short_row_names_the_first_missing_column(landing):
    folder = small_landing(landing)
    with (folder / "cash.csv").open("a") as handle:
        handle.write("2014-01-03,F1\n")
    with pytest.raises(StructuralError) as info:
        read(landing)
    assert (info.value.file, info.value.row, info.value.column) == ("cash.csv", 5, "currency")


def test_bytes_that_are_not_utf8(landing):
    folder = small_landing(landing)
    with (folder / "prices.csv").open("ab") as handle:
        handle.write(b"2014-01-03,CAF\xe9,10,USD\n")
    with pytest.raises(StructuralError) as info:
        read(landing)
    assert (info.value.file, info.value.row, info.value.column) == ("prices.csv", 5, "security_id")


def test_as_of_date_that_is_not_the_folders_date(landing):
    folder = small_landing(landing)
    positions = pd.read_csv(folder / "positions.csv")
    positions.loc[3, "as_of_date"] = "2014-01-02"
    write(folder, "positions.csv", positions)
    with pytest.raises(StructuralError) as info:
        read(landing)
    assert (info.value.file, info.value.row, info.value.column) == ("positions.csv", 5, "as_of_date")
    assert "'2014-01-02' is not the folder's date 2014-01-03" in str(info.value)


def test_row_without_fund_id_cannot_be_attributed(landing):
    folder = small_landing(landing)
    positions = pd.read_csv(folder / "positions.csv")
    positions.loc[1, "fund_id"] = None
    write(folder, "positions.csv", positions)
    with pytest.raises(StructuralError, match=r"positions\.csv, row 3, column 'fund_id'"):
        read(landing)


def test_non_numeric_values_are_row_faults_not_structural(landing):
    folder = small_landing(landing)
    prices = pd.read_csv(folder / "prices.csv", dtype=str)
    prices.loc[0, "close_price"] = "n/a"
    write(folder, "prices.csv", prices)
    frames, _ = read(landing)
    assert frames["prices"]["close_price"].isna().tolist() == [True, False, False]


def test_parquet_is_read_like_csv(landing):
    folder = small_landing(landing)
    prices = pd.read_csv(folder / "prices.csv")
    (folder / "prices.csv").unlink()
    prices.to_parquet(folder / "prices.parquet", index=False)
    frames, sources = read(landing)
    assert sources["prices"] == "prices.parquet"
    assert frames["prices"]["close_price"].tolist() == [100.0, 100.0, 50.0]
