"""Benchmark: where people wait (issue 18): the write floor, a night's fixed cost, a rerun,
a year's replay, and the same replay in cvxportfolio.

Each part runs alone (``--parts``) and prints a table; ``--json`` writes every figure to
$REBALANCE_HOME/bench/ for the docs (docs/development/performance-profile.md).

- ``night``: one night of ``--funds`` x ``--holdings`` (default 10,000 x 100 = 1M
  positions, full engine) on a fresh database, then a rerun of the same date, in a child
  process (libraries imported first: the time after the fixed cost). Anchors: the *write
  floor*, PostgreSQL's COPY, as text into tables without indexes, of exactly the rows the
  night stored for the date (counted from the warehouse after the run, every table), and
  the COPY of the date's input files. The same rows COPYed in binary are reported beside it.
- ``fixed``: a one-fund ``rebalance run`` as a whole process (median of ``--fixed-runs``,
  each the first run of its date on a migrated warehouse), the same under
  ``python -X importtime`` (Great Expectations alone and everything else), and a breakdown
  in one process: imports, engine and migration check, GX import, GX context, the run.
- ``replay``: ``rebalance simulate`` as a whole process over ``--replay-days`` business days
  from 2014-01-02 for the book of ``--replay-funds`` x ``--replay-holdings`` (default
  1,000 x 100), the small book (``--small-funds`` x ``--small-holdings``, default 4 x 12),
  the small book without the checks, and a one-fund book over the same days and over one
  day (their difference / days = the per-day fixed cost of a replay).
- ``cvx``: the small book's year in cvxportfolio's MarketSimulator on the same prices
  (``bench/cvx_replay.py``, a whole process): a fixed-weights policy to each fund's targets,
  rebalanced on the days Rebalance's replay rebalanced it. cvxportfolio is a benchmark
  dependency only (``pip install -e .[bench]``).

Every timed thing runs ``--repeat`` times (default 2) and the median is reported. Peak RSS is
that of the measured child process and its own children (``os.wait4``).

    make bench BENCH_PARTS="fixed replay"
    python bench/bench_speed.py --parts night --funds 1000 --repeat 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
AS_OF = dt.date(2014, 1, 2)
PARTS = ("night", "fixed", "replay", "cvx")
REPLAY_BOOKS = ("small", "small-no-validate", "big", "tiny")


# --------------------------------------------------------------------- processes
def timed_process(command: list[str], env: dict | None = None, timeout: float | None = None) -> dict:
    """Run ``command``; its wall seconds, CPU seconds (user + system, it and its children:
    less sensitive than the wall to a shared machine's load), peak RSS (MiB, it and its
    children), exit code, stdout and stderr."""
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT), **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        deadline = None if timeout is None else start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024,
                "rc": proc.returncode,
                "stdout": out.read().decode(errors="replace"), "stderr": err.read().decode(errors="replace")}


def checked(result: dict, what: str) -> dict:
    if result["rc"] != 0:
        sys.exit(f"{what} failed (exit {result['rc']}):\n{result['stderr'][-4000:]}")
    return result


def rebalance_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rebalance_pipeline.cli", *args]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --------------------------------------------------------------------- databases
class Database:
    """A database of its own on the warehouse's server, dropped on exit."""

    def __init__(self):
        import sqlalchemy as sa

        from rebalance_pipeline import warehouse

        self.sa = sa
        server = warehouse.get_engine()
        self.name = f"rebalance_bench_{uuid.uuid4().hex[:8]}"
        self.admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
        self.url = server.url.set(database=self.name).render_as_string(hide_password=False)

    def __enter__(self) -> Database:
        with self.admin.connect() as conn:
            conn.execute(self.sa.text(f'CREATE DATABASE "{self.name}"'))
        return self

    def __exit__(self, *exc) -> None:
        from rebalance_pipeline import warehouse

        warehouse._engine_for.cache_clear()
        with self.admin.connect() as conn:
            conn.execute(self.sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                         {"n": self.name})
            conn.execute(self.sa.text(f'DROP DATABASE IF EXISTS "{self.name}"'))
        self.admin.dispose()


# --------------------------------------------------------------------- the write floor
def night_rows(url: str, as_of: dt.date) -> dict[str, tuple[str, int]]:
    """Every table (partitioned parents, not their leaves) holding rows of the date: its
    filter and row count. A row of the date is one whose ``as_of_date`` (or, for the
    reference versions, ``valid_from``) is the date."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    out = {}
    with engine.connect() as conn:
        tables = conn.execute(sa.text(
            "SELECT c.relname, bool_or(a.attname = 'as_of_date') AS dated, bool_or(a.attname = 'valid_from') AS ref"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
            " WHERE n.nspname = 'rebalance' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            " GROUP BY c.relname ORDER BY c.relname")).all()
        for name, dated, ref in tables:
            column = "as_of_date" if dated else "valid_from" if ref else None
            if column is None:
                continue
            where = f"{column} = '{as_of.isoformat()}'::date"   # a fixed date of the bench, not user input
            count = conn.execute(sa.text(f"SELECT count(*) FROM rebalance.{name} WHERE {where}")).scalar()
            if count:
                out[name] = (where, int(count))
    engine.dispose()
    return out


def floor_copy_seconds(url: str, tables: dict[str, tuple[str, int]], binary: bool = False,
                       by_table: dict[str, float] | None = None) -> float:
    """COPY exactly the night's rows (read out first, in the same format) into tables of
    the same columns without indexes or constraints, one transaction; seconds of the COPY
    (and, into ``by_table``, each table's)."""
    import sqlalchemy as sa

    fmt = "(FORMAT binary)" if binary else ""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    conn = engine.raw_connection()
    try:
        buffers = {}
        with conn.cursor() as cur:
            cur.execute("DROP SCHEMA IF EXISTS bench_floor CASCADE; CREATE SCHEMA bench_floor")
            for name, (where, _) in tables.items():
                cur.execute(f"CREATE TABLE bench_floor.{name} (LIKE rebalance.{name})")
                buffers[name] = io.BytesIO()
                cur.copy_expert(f"COPY (SELECT * FROM rebalance.{name} WHERE {where}) TO STDOUT {fmt}", buffers[name])
                buffers[name].seek(0)
        conn.commit()
        start = time.perf_counter()
        with conn.cursor() as cur:
            for name, buffer in buffers.items():
                started = time.perf_counter()
                cur.copy_expert(f"COPY bench_floor.{name} FROM STDIN {fmt}", buffer)
                if by_table is not None:
                    by_table[name] = min(by_table.get(name, float("inf")), time.perf_counter() - started)
        conn.commit()
        elapsed = time.perf_counter() - start
        with conn.cursor() as cur:
            cur.execute("DROP SCHEMA bench_floor CASCADE")
        conn.commit()
    finally:
        conn.close()
        engine.dispose()
    return elapsed


def part_night(args, rows: list[dict], report: dict) -> None:
    from bench_nightly import baseline_copy_seconds, landing_for

    landing = landing_for(args.funds, args.holdings, args.securities, basic=False)
    size = f"{args.funds:,} x {args.holdings} ({args.funds * args.holdings:,} positions)"
    samples = []
    for _ in range(args.repeat):
        with Database() as db:
            from rebalance_pipeline import warehouse

            warehouse.migrate(warehouse.get_engine(db.url))
            input_copy = baseline_copy_seconds(db.url, landing / AS_OF.isoformat())
            run = checked(timed_process([sys.executable, str(ROOT / "bench" / "bench_nightly.py"), "--runs",
                                         str(args.night_runs),
                                         "--no-morning", "--child", db.url, str(landing)]), "the night")
            child = json.loads(run["stdout"].strip().splitlines()[-1])
            print(f"  night child: {json.dumps(child)}", flush=True)
            tables = night_rows(db.url, AS_OF)
            floor_by_table: dict[str, float] = {}
            floor = [floor_copy_seconds(db.url, tables, by_table=floor_by_table) for _ in range(2)]
            floor_binary = [floor_copy_seconds(db.url, tables, binary=True) for _ in range(2)]
            runs = child["runs"] if len(child["runs"]) > 1 else child["runs"] * 2   # no rerun asked: the first
            samples.append({"first": runs[0]["seconds"], "rerun": runs[1]["seconds"],
                            "first_cpu": runs[0]["cpu_seconds"], "rerun_cpu": runs[1]["cpu_seconds"],
                            "steps": [r["steps"] for r in child["runs"]], "input_copy": input_copy,
                            "floor": min(floor), "floor_binary": min(floor_binary), "rss_mib": run["rss_mib"],
                            "process": run["wall"], "tables": {k: v[1] for k, v in tables.items()},
                            "floor_by_table_s": {k: round(v, 3) for k, v in floor_by_table.items()}})
            print(f"  night: first {samples[-1]['first']:.2f} s, rerun {samples[-1]['rerun']:.2f} s, floor "
                  f"{samples[-1]['floor']:.2f} s (binary {samples[-1]['floor_binary']:.2f} s), input COPY "
                  f"{input_copy:.2f} s, steps {samples[-1]['steps']}", flush=True)
    first, rerun = median([s["first"] for s in samples]), median([s["rerun"] for s in samples])
    floor, floor_binary = median([s["floor"] for s in samples]), median([s["floor_binary"] for s in samples])
    input_copy = median([s["input_copy"] for s in samples])
    rss = max(s["rss_mib"] for s in samples)
    tables = samples[-1]["tables"]
    stored = sum(tables.values())
    rows.append(_row("write floor: COPY (text) of the rows the night stores", f"{stored:,} rows in {len(tables)} tables",
                     floor, None, None, "-"))
    rows.append(_row("the same rows, binary COPY", f"{stored:,} rows", floor_binary, None, floor_binary / floor,
                     "write floor"))
    rows.append(_row("COPY of the date's input files", size, input_copy, None, None, "-"))
    first_cpu, rerun_cpu = median([s["first_cpu"] for s in samples]), median([s["rerun_cpu"] for s in samples])
    rows.append(_row("night after its fixed cost (goal <= 2x floor)", size, first, rss, first / floor, "write floor",
                     first_cpu))
    rows.append(_row("  the same, to the input files' COPY", size, first, None, first / input_copy, "input COPY"))
    rows.append(_row("rerun of the same date (goal <= 1x first)", size, rerun, None, rerun / first, "first run",
                     rerun_cpu))
    report["night"] = {"size": size, "samples": samples, "first_s": first, "rerun_s": rerun, "floor_s": floor,
                       "first_cpu_s": first_cpu, "rerun_cpu_s": rerun_cpu,
                       "floor_binary_s": floor_binary, "input_copy_s": input_copy, "peak_rss_mib": rss,
                       "tables": tables, "rows_stored": stored, "ratio_to_floor": first / floor,
                       "ratio_to_input_copy": first / input_copy, "rerun_ratio": rerun / first}


# --------------------------------------------------------------------- the fixed cost
def sample_landing(funds: int, holdings: int, days: int) -> Path:
    from rebalance_pipeline import settings

    for longer in sorted(settings.home().glob(f"bench-replay-{funds}x{holdings}-*")):
        # a landing of as many days or more serves (the replay takes its first ``days`` dates)
        if (longer / ".complete").exists() and int(longer.name.rsplit("-", 1)[1]) >= days:
            return longer
    landing = settings.home() / f"bench-replay-{funds}x{holdings}-{days}"
    if not (landing / ".complete").exists():
        print(f"generating {funds:,} funds x {holdings} holdings x {days} days in {landing} ...", flush=True)
        checked(timed_process(rebalance_cli("sample", "--out", str(landing), "--start", AS_OF.isoformat(),
                                            "--days", str(days), "--funds", str(funds), "--holdings",
                                            str(holdings))), "rebalance sample")
        (landing / ".complete").touch()
    return landing


def landing_dates(landing: Path) -> list[str]:
    return sorted(p.name for p in landing.iterdir() if re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.name))


IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def importtime_summary(stderr: str, top: int = 12) -> dict:
    """``-X importtime`` lines -> seconds: all imports, Great Expectations' (its top-level
    import, what it pulls in first included), the rest, and the top-level modules."""
    total, roots, gx = 0, {}, 0
    for line in stderr.splitlines():
        m = IMPORT_LINE.match(line)
        if not m:
            continue
        self_us, cumulative_us, indent, name = int(m[1]), int(m[2]), len(m[3]), m[4]
        total += self_us
        if indent == 1:   # a module imported by no other one being imported: a root of the tree
            roots[name] = roots.get(name, 0) + cumulative_us
            if name.split(".")[0] == "great_expectations":
                gx += cumulative_us
    biggest = sorted(roots.items(), key=lambda kv: -kv[1])[:top]
    return {"imports_s": total / 1e6, "great_expectations_s": gx / 1e6, "other_imports_s": (total - gx) / 1e6,
            "top_modules_s": {k: round(v / 1e6, 3) for k, v in biggest}}


def part_fixed(args, rows: list[dict], report: dict) -> None:
    runs = args.fixed_runs
    landing = sample_landing(1, 12, runs + 3)
    dates = landing_dates(landing)
    whole, traced, breakdown = [], None, []
    with Database() as db:
        env = {"REBALANCE_WAREHOUSE_URL": db.url}
        checked(timed_process(rebalance_cli("warehouse", "migrate"), env), "migrate")
        checked(timed_process(rebalance_cli("run", "--date", dates[0], "--landing", str(landing), "--quiet"), env),
                "first night")
        for date in dates[1:1 + runs]:
            whole.append(checked(timed_process(rebalance_cli("run", "--date", date, "--landing", str(landing),
                                                             "--quiet"), env), "one-fund night"))
        read = checked(timed_process(rebalance_cli("proposals"), env), "a read command")
        traced = checked(timed_process([sys.executable, "-X", "importtime", "-m", "rebalance_pipeline.cli", "run",
                                        "--date", dates[1 + runs], "--landing", str(landing), "--quiet"], env),
                         "importtime night")
        breakdown = checked(timed_process([sys.executable, __file__, "--fixed-child", db.url, str(landing),
                                           dates[2 + runs]], env), "breakdown")
    # Imports alone, each in a process of its own (CPU seconds are what load inflates least).
    probes = {"import great_expectations": "import great_expectations",
              "import the CLI (rebalance_pipeline.cli)": "import rebalance_pipeline.cli",
              "python -c pass": "pass"}
    alone = {}
    for label, statement in probes.items():
        runs_ = [checked(timed_process([sys.executable, "-c", statement]), label) for _ in range(max(args.repeat, 2))]
        alone[label] = {"wall": median([r["wall"] for r in runs_]), "cpu": median([r["cpu"] for r in runs_])}
    imports = importtime_summary(traced["stderr"])
    steps = json.loads(breakdown["stdout"].strip().splitlines()[-1])
    wall, cpu = median([w["wall"] for w in whole]), median([w["cpu"] for w in whole])
    rss = max(w["rss_mib"] for w in whole)
    rows.append(_row("fixed cost: one-fund `rebalance run`, whole process (goal <= 5 s)", "1 x 12", wall, rss,
                     wall / read["wall"], "CLI read command", cpu))
    rows.append(_row("  a CLI read command (`rebalance proposals`)", "-", read["wall"], read["rss_mib"], None, "-",
                     read["cpu"]))
    rows.append(_row("  imports, all (-X importtime)", "-", imports["imports_s"], None, None, "-"))
    rows.append(_row("  import of great_expectations alone", "-", imports["great_expectations_s"], None, None, "-"))
    rows.append(_row("  everything but GX's import (goal <= 1.5 s)", "-", wall - imports["great_expectations_s"],
                     None, None, "-"))
    for label, measured in alone.items():
        rows.append(_row(f"  a process that does only: {label}", "-", measured["wall"], None, None, "-",
                         measured["cpu"]))
    # GX's own share: its import after the CLI's (pandas, numpy already in), as a night imports it.
    gx_cpu = steps.get("import great_expectations (CPU)", float("nan"))
    rows.append(_row("  everything but GX's import, CPU s: whole night less GX's import in it (goal <= 1.5 s)",
                     "-", None, None, None, "-", cpu - gx_cpu))
    for name, seconds in steps.items():
        if not name.endswith(" (CPU)"):
            rows.append(_row(f"  in-process: {name}", "-", seconds, None, None, "-", steps.get(f"{name} (CPU)")))
    report["fixed"] = {"whole_process_s": [w["wall"] for w in whole], "median_s": wall, "peak_rss_mib": rss,
                       "whole_process_cpu_s": [w["cpu"] for w in whole], "median_cpu_s": cpu,
                       "cli_read_s": read["wall"], "imports": imports, "breakdown_s": steps,
                       "all_but_gx_import_s": wall - imports["great_expectations_s"], "imports_alone": alone}


def fixed_child(url: str, landing: Path, date: str) -> None:
    """A one-fund night in this process, timed by phase (what the CLI does, in its order)."""
    times: dict[str, float] = {}
    last = [time.perf_counter(), time.process_time()]

    def lap(name: str) -> None:   # wall seconds, and this process's CPU seconds under "<name> (CPU)"
        now, cpu = time.perf_counter(), time.process_time()
        times[name] = round(times.get(name, 0) + now - last[0], 3)
        times[f"{name} (CPU)"] = round(times.get(f"{name} (CPU)", 0) + cpu - last[1], 3)
        last[0], last[1] = now, cpu

    os.environ["REBALANCE_WAREHOUSE_URL"] = url
    from rebalance_pipeline import cli, steps, validation

    lap("import the CLI and pipeline (no GX)")
    engine = cli._engine()
    lap("engine + migration check")
    import great_expectations as gx

    lap("import great_expectations")
    gx.get_context(mode="ephemeral")
    lap("first GX ephemeral context")
    gx.get_context(mode="ephemeral")
    lap("another GX ephemeral context")
    # The night itself, with its validate calls (each builds a context and suites) timed apart.
    spent = {"validate": 0.0, "calls": 0}
    original = validation.validate

    def timed_validate(*a, **k):
        start = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            spent["validate"] += time.perf_counter() - start
            spent["calls"] += 1

    validation.validate = timed_validate
    as_of = dt.date.fromisoformat(date)
    cli._check_runnable(engine, landing, as_of)
    cli._pending_ids(engine, as_of)
    lap("pre-run checks (runnable, pending ids)")
    steps.run_nightly(as_of, landing, engine)
    lap("the run (run_nightly)")
    times[f"  of which validate ({spent['calls']} calls: context, suites, checks)"] = round(spent["validate"], 3)
    cli._night_data_docs(engine, as_of, quiet=True)
    lap("data docs of the night")
    print(json.dumps(times))


# --------------------------------------------------------------------- the replay
def simulate_once(landing: Path, days: int, extra: tuple[str, ...] = ()) -> dict:
    dates = landing_dates(landing)[:days]
    out = Path(tempfile.mkdtemp(prefix="bench-sim-"))
    result = checked(timed_process(rebalance_cli("simulate", "--from", dates[0], "--to", dates[-1], "--landing",
                                                 str(landing), "--out", str(out), "--charts", "0", *extra)),
                     "rebalance simulate")
    result["out"] = out
    return result


def simulate_median(landing: Path, days: int, repeat: int, extra: tuple[str, ...] = ()) -> dict:
    results = [simulate_once(landing, days, extra) for _ in range(repeat)]
    print(f"  simulate {landing.name} {days} days {' '.join(extra)}: "
          f"{', '.join(format(r['wall'], '.1f') for r in results)} s", flush=True)
    return {"wall": median([r["wall"] for r in results]), "walls": [r["wall"] for r in results],
            "cpu": median([r["cpu"] for r in results]),
            "rss_mib": max(r["rss_mib"] for r in results), "out": str(results[-1]["out"])}


def part_replay(args, rows: list[dict], report: dict) -> None:
    days = args.replay_days
    big = sample_landing(args.replay_funds, args.replay_holdings, days)
    small = sample_landing(args.small_funds, args.small_holdings, days)
    tiny = sample_landing(1, 5, days)
    books = args.replay_books
    out = report["replay"] = {"days": days}
    if "small" in books:
        out["small"] = simulate_median(small, days, args.repeat)
        rows.append(_row("replay of the small book", f"{args.small_funds} x {args.small_holdings} x {days} days",
                         out["small"]["wall"], out["small"]["rss_mib"], None, "-", out["small"]["cpu"]))
    if "small-no-validate" in books:
        out["small_no_validate"] = simulate_median(small, days, args.repeat, ("--no-validate",))
        anchor = out.get("small")
        rows.append(_row("  the same without the checks (--no-validate)", "", out["small_no_validate"]["wall"],
                         out["small_no_validate"]["rss_mib"],
                         out["small_no_validate"]["wall"] / anchor["wall"] if anchor else None, "with checks",
                         out["small_no_validate"]["cpu"]))
    if "big" in books:
        out["big"] = simulate_median(big, days, args.repeat)
        rows.append(_row("replay: `rebalance simulate` (goal <= 60 s)", f"{args.replay_funds:,} x "
                         f"{args.replay_holdings} x {days} days", out["big"]["wall"], out["big"]["rss_mib"], None, "-",
                         out["big"]["cpu"]))
    if "tiny" in books:
        out["tiny_1day"] = simulate_median(tiny, 1, max(args.repeat, 2))
        out["tiny"] = simulate_median(tiny, days, args.repeat)
        per_day = (out["tiny"]["wall"] - out["tiny_1day"]["wall"]) / (days - 1)
        per_day_cpu = (out["tiny"]["cpu"] - out["tiny_1day"]["cpu"]) / (days - 1)
        rows.append(_row("replay of one fund (the per-day fixed cost)", f"1 x 5 x {days} days", out["tiny"]["wall"],
                         out["tiny"]["rss_mib"], None, "-", out["tiny"]["cpu"]))
        rows.append(_row("  the same over one day (the process's fixed cost)", "1 x 5 x 1 day",
                         out["tiny_1day"]["wall"], out["tiny_1day"]["rss_mib"], None, "-", out["tiny_1day"]["cpu"]))
        rows.append(_row("  per-day overhead of a replay (goal < 0.05 s)", "per day", per_day, None, None, "-",
                         per_day_cpu))
        out.update(per_day_overhead_s=per_day, per_day_overhead_cpu_s=per_day_cpu)


def part_cvx(args, rows: list[dict], report: dict) -> None:
    days = args.replay_days
    small = sample_landing(args.small_funds, args.small_holdings, days)
    ours = report.get("replay", {}).get("small")
    if ours is None:
        ours = simulate_median(small, days, args.repeat)
    daily = Path(ours["out"]) / "simulation_daily.csv"
    dates = landing_dates(small)[:days]
    results = [checked(timed_process([sys.executable, str(ROOT / "bench" / "cvx_replay.py"), str(small), dates[0],
                                      dates[-1], "--rebalance-days", str(daily)]), "cvxportfolio replay")
               for _ in range(args.repeat)]
    detail = json.loads(results[-1]["stdout"].strip().splitlines()[-1])
    wall, cpu = median([r["wall"] for r in results]), median([r["cpu"] for r in results])
    rows.append(_row("cvxportfolio MarketSimulator, same funds, prices, rebalance days", f"{args.small_funds} x "
                     f"{args.small_holdings} x {days} days", wall, max(r["rss_mib"] for r in results), None, "-", cpu))
    rows.append(_row("Rebalance's replay to cvxportfolio's (goal <= 3x)", "", ours["wall"], ours["rss_mib"],
                     ours["wall"] / wall, "cvxportfolio", ours["cpu"]))
    rows.append(_row("  the same ratio in CPU seconds", "", ours["cpu"], None, ours["cpu"] / cpu, "cvxportfolio"))
    report["cvx"] = {"walls": [r["wall"] for r in results], "wall_s": wall, "cpu_s": cpu, "detail": detail,
                     "rebalance_s": ours["wall"], "rebalance_cpu_s": ours["cpu"], "ratio": ours["wall"] / wall,
                     "cpu_ratio": ours["cpu"] / cpu}


# --------------------------------------------------------------------- output
def _row(what: str, size: str, seconds: float | None, rss: float | None, ratio: float | None, anchor: str,
         cpu: float | None = None) -> dict:
    return {"what": what, "size": size, "wall_s": None if seconds is None else round(seconds, 3), "cpu_s": None if cpu is None else round(cpu, 3),
            "peak_rss_mib": None if rss is None else round(rss),
            "ratio": None if ratio is None else round(ratio, 2), "anchor": anchor}


def print_table(rows: list[dict]) -> None:
    print("\n| what | size | wall s | CPU s | peak RSS MiB | ratio | anchor |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['what']} | {r['size']} | {'' if r['wall_s'] is None else format(r['wall_s'], '.2f')} | {'' if r['cpu_s'] is None else format(r['cpu_s'], '.2f')}"
              f" | {'' if r['peak_rss_mib'] is None else r['peak_rss_mib']}"
              f" | {'' if r['ratio'] is None else format(r['ratio'], '.2f') + 'x'} | {r['anchor']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--repeat", type=int, default=2, help="runs of each timed thing (median reported)")
    parser.add_argument("--funds", type=int, default=10_000)
    parser.add_argument("--holdings", type=int, default=100)
    parser.add_argument("--securities", type=int, default=5_000)
    parser.add_argument("--night-runs", type=int, default=2, choices=(1, 2),
                        help="2: the night and a rerun of its date; 1: the night only (the rerun row repeats it)")
    parser.add_argument("--fixed-runs", type=int, default=3, help="one-fund nights timed as whole processes")
    parser.add_argument("--replay-days", type=int, default=252)
    parser.add_argument("--replay-funds", type=int, default=1_000)
    parser.add_argument("--replay-holdings", type=int, default=100)
    parser.add_argument("--replay-books", nargs="+", choices=REPLAY_BOOKS, default=list(REPLAY_BOOKS),
                        help="which replays: the big book, the small one (with and without checks), one fund")
    parser.add_argument("--small-funds", type=int, default=4)
    parser.add_argument("--small-holdings", type=int, default=12)
    parser.add_argument("--json", type=Path, default=None,
                        help="where to write the figures (default: $REBALANCE_HOME/bench/speed-<time>.json)")
    parser.add_argument("--fixed-child", nargs=3, metavar=("URL", "LANDING", "DATE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fixed_child:
        fixed_child(args.fixed_child[0], Path(args.fixed_child[1]), args.fixed_child[2])
        return
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    sys.path.insert(0, str(ROOT / "bench"))
    from rebalance_pipeline import settings

    rows: list[dict] = []
    report: dict = {"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "repeat": args.repeat,
                    "load_average_start": os.getloadavg(), "cpus": os.cpu_count(), "parts": args.parts}
    for part in PARTS:
        if part in args.parts:
            print(f"== {part}", flush=True)
            globals()[f"part_{part}"](args, rows, report)
    report["load_average_end"] = os.getloadavg()
    report["rows"] = rows
    print_table(rows)
    path = args.json or settings.home() / "bench" / f"speed-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str))
    print(f"figures in {path} (load average {report['load_average_start'][0]:.1f} at the start, "
          f"{report['load_average_end'][0]:.1f} at the end, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
