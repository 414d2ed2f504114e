"""Row-level validation of a night's inputs with Great Expectations 1.x.

The suites are defined in code, by input (``rebalance_pipeline.validation_suites``), and run
here on an ephemeral GX context against the pandas frames the landing reader produced (no GX
project folder to deploy); one GX session per process. Each
expectation carries in its ``meta`` what our pipeline needs to act on a failure: which
key it blames (a ``fund_id`` or a ``security_id``) and a sentence for ops. The unexpected
rows GX returns become *faults*; ``rebalance_core.faults.blocked_funds`` turns them into
the funds they block.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import pandas as pd

from rebalance_core.faults import FAULT_COLUMNS, empty_faults
from rebalance_pipeline.validation_checks import NO_ROWS, Check, Expectation  # noqa: F401  (re-exported)
from rebalance_pipeline.validation_suites import NIGHT_SUITES, build_checks


@dataclass
class ValidationOutcome:
    results: pd.DataFrame        # one row per check: dataset, check, success, failed_rows, detail
    faults: pd.DataFrame         # one row per failing input row (FAULT_COLUMNS)
    # suite, result: each suite's GX validation result as JSON (rebalance_pipeline.data_docs.compact_result),
    # kept with the night for its Data Docs
    gx_results: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["suite", "result"]))



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
