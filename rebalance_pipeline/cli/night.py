"""``rebalance run``, ``sample`` and ``simulate``: a night, a synthetic landing folder, a replay.

``run`` checks that the night can start (a landing root, a trading day), runs it step by step
printing each step's result in words, then prints the morning report.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rebalance_pipeline.cli.common import (
    DATE_FORMATS,
    EXIT_CANNOT_RUN,
    EXIT_REFUSED,
    EXIT_USAGE,
    DateOption,
    console,
    err,
    open_engine,
    plural,
)


def run(
    date: DateOption,
    landing: Annotated[Path, typer.Option(help="landing folder (holds one sub-folder per date)")],
    run_id: Annotated[str | None, typer.Option(help="id of this run (default: generated)")] = None,
    quiet: Annotated[bool, typer.Option(help="print only the one-line result")] = False,
    shards: Annotated[int | None, typer.Option(
        min=1, help="split the funds into this many shards (default: $REBALANCE_SHARDS, else by the night's size)")
    ] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="processes that run shards at once (default: one per core)")] = None,
) -> None:
    """The whole nightly run for one date: ingest, validate, drift, proposals, write.

    Exits 3 when the night cannot run (nothing is written): a structural fault in the
    landing folder, a missing folder, a date that is not a trading day.
    """
    from rebalance_pipeline import steps
    from rebalance_pipeline.cli.reports import print_report
    from rebalance_pipeline.landing import StructuralError
    from rebalance_pipeline.read_model import nights

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    as_of = date.date()
    engine = open_engine()
    _check_runnable(engine, landing, as_of)
    pending_before = nights.pending_ids(engine, as_of)
    published: list[str] = []

    def progress(step: str, result) -> None:
        line = _step_text(engine, step, result, pending_before)
        if step == "publish":
            published.append(line)
        if not quiet:
            err.print(f"[dim]{step:>9}[/dim] {line}")

    try:
        report = steps.run_nightly(as_of, landing, engine, run_id=run_id, on_step=progress, shards=shards,
                                   workers=workers)
    except StructuralError as exc:
        err.print(f"[bold red]run for {as_of} failed, nothing written:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    console.print(f"{as_of}: {report.funds} funds, {report.proposed} proposed, {report.blocked} blocked, "
                  f"{report.trades} trades; {published[-1] if published else ''} (run {report.run_id})",
                  soft_wrap=True)
    _night_data_docs(engine, as_of, quiet)
    if not quiet:
        print_report(engine, as_of)


def _night_data_docs(engine, as_of: dt.date, quiet: bool) -> None:
    """The night's GX Data Docs under the reports folder. The night is published whatever
    happens here: a failure is reported, and `rebalance data-docs` builds them again."""
    from rebalance_pipeline import data_docs, settings

    try:
        index = data_docs.build_data_docs(engine, as_of, settings.reports_dir())
    except Exception as exc:  # a report: never undoes or fails a published night
        err.print(f"[bold yellow]Data Docs of {as_of} not built:[/bold yellow] {escape(str(exc))} "
                  f"(rebalance data-docs --date {as_of})")
        return
    if not quiet:
        err.print(f"[dim]data docs[/dim] {index}")


def _check_runnable(engine, landing: Path, as_of: dt.date) -> None:
    """Say why a night cannot start before trying: no landing root, not a trading day."""
    from rebalance_core.calendar import DEFAULT_CALENDAR, is_trading_day, sessions_between
    from rebalance_pipeline.read_model import nights

    def cannot(message: str) -> None:
        err.print(f"[bold red]run for {as_of} cannot start, nothing written:[/bold red] {escape(message)}")
        raise typer.Exit(EXIT_CANNOT_RUN)

    if not landing.is_dir():
        cannot(f"the landing root {landing} does not exist" if not landing.exists()
               else f"the landing root {landing} is not a folder")
    if (landing / as_of.isoformat()).is_dir():
        return
    calendars = nights.fund_calendars(engine) or [DEFAULT_CALENDAR]
    if not any(is_trading_day(as_of, c) for c in calendars):
        before = sessions_between(as_of - dt.timedelta(days=10), as_of, calendars[0])
        after = sessions_between(as_of, as_of + dt.timedelta(days=10), calendars[0])
        cannot(f"{as_of} ({as_of:%A}) is not a trading day on the funds' calendars ({', '.join(calendars)}); "
               f"the trading days around it are {before[-1] if before else '?'} and {after[0] if after else '?'}")
    dates = sorted(p.name for p in landing.iterdir() if p.is_dir() and _is_iso_date(p.name))
    cannot(f"no folder {landing / as_of.isoformat()} in the landing root"
           + (f" (its dates run from {dates[0]} to {dates[-1]})" if dates else " (it holds no date folders)"))


def _is_iso_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _step_text(engine, step: str, result, pending_before: set[str]) -> str:
    """A step's result in words (the steps return counts for machines)."""
    from rebalance_pipeline import formatting as fmt

    if step == "publish":
        return _publish_text(engine, result, pending_before)
    if hasattr(result, "describe"):
        result = result.describe()
    if not isinstance(result, dict):
        return str(result)
    n = {k: fmt.count(v) if isinstance(v, (int, float)) else str(v) for k, v in result.items()}
    if step == "ingest" and "shards" in result:
        return (f"{n.get('funds', '?')} funds, {n.get('positions', '?')} positions, "
                f"{plural(int(result['shards']), 'shard')}")
    if step == "shards":
        return (f"{plural(int(result.get('shards', 0)), 'shard')} done: {n.get('funds', '?')} funds, "
                f"{n.get('proposed', '?')} proposed, {n.get('blocked', '?')} blocked, {n.get('trades', '?')} trades, "
                f"{n.get('failed_checks', '?')} failed checks")
    if step == "ingest":
        return "read " + ", ".join(f"{stem}.csv {rows} rows" for stem, rows in n.items())
    if step == "validate":
        return (f"{n.get('checks', '?')} checks, {n.get('failed_checks', '?')} failed, "
                f"{n.get('blocked_funds', '?')} funds blocked")
    if step == "drift":
        return (f"{n.get('funds', '?')} funds, {n.get('rows', '?')} holdings (and cash rows), "
                f"{n.get('breached_funds', '?')} funds with a breach")
    if step == "propose":
        return f"{n.get('proposals', '?')} proposals, {n.get('trades', '?')} trades"
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in n.items())


def _publish_text(engine, report, pending_before: set[str]) -> str:
    """What publishing did to the proposals, told apart: new, found again unchanged (a rerun
    re-publishes a pending proposal with the same trades under the same id), kept as reviewed."""
    from rebalance_pipeline.read_model import nights

    written = nights.run_proposal_ids(engine, report.run_id)
    unchanged = len(written & pending_before)
    fresh = len(written - pending_before)
    dropped = len(pending_before - written)
    parts = [plural(fresh, "new proposal")] if fresh or not (unchanged or report.kept_existing) else []
    if unchanged:
        parts.append(f"{plural(unchanged, 'proposal')} re-published unchanged")
    if dropped:
        parts.append(f"{dropped} pending {'one' if dropped == 1 else 'ones'} of this date replaced")
    if getattr(report, "auto_approved", 0):
        parts.append(f"{report.auto_approved:,} auto-approved by rule")
    if report.kept_existing:
        parts.append(f"{report.kept_existing} already reviewed, kept as decided")
    if report.superseded:
        parts.append(f"{plural(report.superseded, 'pending proposal')} of earlier nights superseded")
    return ", ".join(parts)


def sample(
    out: Annotated[Path, typer.Option(help="landing folder to write (one sub-folder per date)")],
    start: Annotated[dt.datetime, typer.Option(formats=DATE_FORMATS, metavar="YYYY-MM-DD", show_default=False,
                                               help="first trading day, or the next one after it "
                                                    "[default: 2014-01-02]")]
    = dt.datetime(2014, 1, 2),
    days: Annotated[int | None, typer.Option(min=1, show_default=False,
                                             help="trading days to write [default: 3; with --extend: 1]")] = None,
    funds: Annotated[int, typer.Option(min=1, help="number of funds")] = 36,
    holdings: Annotated[int, typer.Option(min=1, help="holdings per fund")] = 12,
    seed: Annotated[int, typer.Option(help="random seed: the same seed writes the same files")] = 7,
    models: Annotated[int, typer.Option(min=0, help="model portfolios (most funds follow one; the first is "
                                                    "reweighted on the last day)")] = 0,
    extend: Annotated[bool, typer.Option(
        "--extend", help="add --days trading days after the folder's latest date (same funds, prices moving on; "
                         "what the warehouse approved and exported is executed: executions.csv); "
                         "--start, --funds, --holdings and --seed are taken from the folder")] = False,
) -> None:
    """Write a realistic synthetic landing folder (trading days from --start), or extend one.

    `rebalance sample --out DIR --extend` adds the next trading day to a folder this
    command wrote (e.g. the demo's, .rebalance/demo-landing): run it, then
    `rebalance run --date <the new date> --landing DIR` for the second morning.
    """
    from rebalance_pipeline.sample import SampleError, extend_landing, generate

    try:
        if extend:
            dates = extend_landing(out, days=days or 1, engine=_desk_engine())
        else:
            dates = generate(out, start.date(), days=days or 3, funds=funds, holdings=holdings, seed=seed,
                             models=models)
    except SampleError as exc:
        err.print(f"[bold red]not written:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_REFUSED) from None
    console.print(" ".join(d.isoformat() for d in dates))


def _desk_engine():
    """The warehouse, when it holds the nights of a folder: `sample --extend` has the
    synthetic order desk execute what it approved and exported. Without one (or one whose
    schema was never created, which this command does not create), no executions.csv."""
    import sqlalchemy as sa

    from rebalance_pipeline import settings, warehouse
    from rebalance_pipeline.read_model import nights

    try:
        engine = warehouse.get_engine()
        if not nights.schema_created(engine):
            return None
    except (settings.WarehouseNotConfigured, sa.exc.OperationalError):
        return None
    warehouse.migrate(engine)   # a warehouse of an earlier version: up to this one (as `run` would)
    return engine


def simulate(
    date_from: Annotated[dt.datetime, typer.Option("--from", formats=DATE_FORMATS, metavar="YYYY-MM-DD",
                                                   help="first date")],
    date_to: Annotated[dt.datetime, typer.Option("--to", formats=DATE_FORMATS, metavar="YYYY-MM-DD",
                                                 help="last date")],
    landing: Annotated[Path, typer.Option(help="landing folder with the dates' sub-folders")],
    out: Annotated[Path | None, typer.Option(help="where the CSVs and charts go (default: $REBALANCE_HOME/simulation)")]
    = None,
    charts: Annotated[int, typer.Option(min=0, help="charts for at most this many funds (largest tracking first)")]
    = 50,
    rows: Annotated[int, typer.Option(min=1, help="funds listed in the terminal (all are in the CSV)")] = 20,
    validate: Annotated[bool, typer.Option(
        "--validate/--no-validate", help="run the nightly checks on each day (funds they block do not trade)")] = True,
    settings_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="COLUMN=VALUE",
        help="override a funds.csv column for every fund, e.g. --set harvest_loss_pct=0.05 (repeatable)")] = None,
) -> None:
    """Replay history under each fund's policy, as if every proposal were approved."""
    import pandas as pd

    from rebalance_pipeline import settings
    from rebalance_pipeline.cli.output import print_more, print_table
    from rebalance_pipeline.landing import StructuralError
    from rebalance_pipeline.simulate import run_simulation

    out = out or settings.home() / "simulation"
    if not landing.is_dir():
        err.print(f"[bold red]simulation failed:[/bold red] the landing root {landing} does not exist")
        raise typer.Exit(EXIT_CANNOT_RUN)
    fund_settings = {}
    for item in settings_ or []:
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            err.print(f"[bold red]--set {escape(item)}:[/bold red] expected COLUMN=VALUE")
            raise typer.Exit(EXIT_USAGE)
        fund_settings[column.strip()] = value.strip()
    try:
        result, folder = run_simulation(landing, date_from.date(), date_to.date(), out, charts, validate=validate,
                                        fund_settings=fund_settings)
    except StructuralError as exc:
        err.print(f"[bold red]simulation failed:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    dates = sorted(pd.to_datetime(result.daily["as_of_date"]).dt.date.unique()) if len(result.daily) else []
    first, last = (dates[0], dates[-1]) if dates else (date_from.date(), date_to.date())
    if dates and (first > date_from.date() or last < date_to.date()):
        err.print(f"[bold yellow]the landing folder holds {plural(len(dates), 'trading day')} of the range asked for:"
                  f"[/bold yellow] replayed {first} to {last}, not {date_from:%Y-%m-%d} to {date_to:%Y-%m-%d}")
    summary = result.summary.sort_values("tracking_difference", key=abs, ascending=False)
    print_table(f"Policy replay {first} to {last} ({plural(len(summary), 'fund')}, largest tracking difference first)",
                summary.head(rows).drop(columns=["first_date", "last_date"], errors="ignore"),
                drop=("realized_gain", "target_return", "return", "est_cost", "base_currency", "turnover", "policy",
                      "days"))
    print_more(min(rows, len(summary)), len(summary), f"{folder / 'simulation_summary.csv'} (or --rows {len(summary)})")
    console.print(f"summary, daily series and charts in {folder}", soft_wrap=True)
