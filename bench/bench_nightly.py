"""Benchmark: one night for N funds × H holdings (default 10,000 × 100 = 1M positions).

Reports the nightly run's wall time and peak memory, and its ratio to the time PostgreSQL
needs just to COPY the same input files into plain typed tables (the floor any loader
pays). Targets from the pipeline issue: ratio <= 3, peak memory <= 4 GiB. Then the
morning after: the review view's queries, 1,000 approvals, their export and the report.

    make bench                              # full size, embedded warehouse
    make bench BENCH_ARGS="--funds 1000"    # smaller
    REBALANCE_WAREHOUSE_URL=postgresql://postgres@127.0.0.1:5432/postgres make bench

The run is measured in a child process (peak RSS of that process, imports included);
its wall time is the in-process run_nightly call (libraries already imported, as in a
long-lived Airflow worker), and the time of the whole `rebalance run`-equivalent process
is printed too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

AS_OF = dt.date(2014, 1, 2)

BASELINE_TABLES = {
    "prices": "as_of_date date, security_id text, close_price numeric(28,10), currency text",
    "positions": "as_of_date date, fund_id text, security_id text, quantity numeric(28,10)",
    "cash": "as_of_date date, fund_id text, currency text, amount numeric(28,6)",
    "targets": "fund_id text, security_id text, target_weight numeric(18,12)",
    "funds": "fund_id text, name text, base_currency text, policy text, frequency text, abs_band numeric,"
             " rel_band numeric, rebalance_to text, min_trade_notional numeric, cash_buffer numeric,"
             " allow_fractional boolean",
    "securities": "security_id text, lot_size numeric, asset_class text, tradable boolean",
    "tax_lots": "fund_id text, security_id text, lot_id text, quantity numeric, unit_cost numeric, acquired_date date",
    "flows": "fund_id text, amount numeric(28,6)",
}


def baseline_copy_seconds(url: str, folder: Path) -> float:
    """COPY every input file into a plain typed table, one transaction, and time it."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS bench_copy CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA bench_copy"))
        for name, columns in BASELINE_TABLES.items():
            if (folder / f"{name}.csv").exists():
                header = (folder / f"{name}.csv").open().readline().strip().replace('"', "").split(",")
                typed = dict(c.strip().split(" ", 1) for c in columns.split(", "))
                columns = ", ".join(f"{c} {typed.get(c, 'text')}" for c in header)
            conn.execute(sa.text(f"CREATE TABLE bench_copy.{name} ({columns})"))
    raw = engine.raw_connection()
    try:
        start = time.perf_counter()
        with raw.cursor() as cur:
            for name in BASELINE_TABLES:
                if not (folder / f"{name}.csv").exists():
                    continue
                with (folder / f"{name}.csv").open("rb") as handle:
                    cur.copy_expert(f"COPY bench_copy.{name} FROM STDIN WITH (FORMAT csv, HEADER true)", handle)
        raw.commit()
        elapsed = time.perf_counter() - start
    finally:
        raw.close()
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA bench_copy CASCADE"))
    return elapsed


def child(url: str, landing: Path, runs: int, shards: int | None, morning: bool = True) -> None:
    """Run the night `runs` times in this process; print timings as JSON."""
    process_start = time.perf_counter()
    from rebalance_pipeline import steps, validation, warehouse  # noqa: F401  (GX is imported lazily below)

    engine = warehouse.get_engine(url)
    warehouse.migrate(engine)
    import great_expectations  # noqa: F401  warm the import outside the timed run

    timings = []
    for _ in range(runs):
        step_times = {}
        last = [time.perf_counter()]

        def on_step(name, result, step_times=step_times, last=last):
            now = time.perf_counter()
            step_times[name] = round(now - last[0], 3)
            last[0] = now
            if name == "ingest":
                step_times["n"] = result.shards

        start, cpu_start = time.perf_counter(), _cpu_seconds()
        report = steps.run_nightly(AS_OF, landing, engine, on_step=on_step, shards=shards)
        timings.append({"seconds": time.perf_counter() - start, "cpu_seconds": _cpu_seconds() - cpu_start,
                        "steps": step_times, "shards": step_times.get("n"),
                        "proposed": report.proposed, "trades": report.trades, "funds": report.funds})
    mornings = morning_timings(engine, Path(landing).parent / "bench-outbox",
                               Path(landing).parent / "bench-reports") if morning else None
    # The largest single process: this one, or one of the shard workers it started (KiB).
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"runs": timings, "morning": mornings, "process_seconds": time.perf_counter() - process_start,
                      "peak_gib": peak / 1024 / 1024}))


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its children reaped so far (the
    shard workers, once their pool is shut down): on a shared machine, less sensitive to
    load than the wall time."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def review_page_timings(engine) -> dict:
    """Seconds for each page of the review view, rendered whole (HTML) through FastAPI's
    TestClient with Airflow's user and permission dependencies answered in-process (no
    api-server, no sign-in): the median of three requests after a first, warming one."""
    import sqlalchemy as sa
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from rebalance_pipeline.review import web
    from rebalance_pipeline.review.app import create_app

    app = create_app()
    app.state.store.engine = engine   # the bench's warehouse (a cached_property: set it outright)
    app.dependency_overrides.update({get_user: lambda: SimpleAuthManagerUser(username="bench", role="user"),
                                     web.CAN_VIEW.dependency: lambda: None, web.CAN_DECIDE.dependency: lambda: None,
                                     web.user_may_decide: lambda: True})
    with engine.connect() as conn:
        # A size that selects about 4,000 proposals: what one bulk decision by filter may take.
        gross_min = conn.execute(sa.text(
            "SELECT gross_notional FROM rebalance.proposal WHERE status = 'pending_review' "
            "ORDER BY gross_notional DESC NULLS LAST OFFSET 4000 LIMIT 1")).scalar()
        largest = conn.execute(sa.text("SELECT proposal_id FROM rebalance.proposal ORDER BY trade_count DESC "
                                       "LIMIT 1")).scalar()
    pages = {
        "queue": "/",
        "queue_page_100": "/?page=100",
        "queue_policy": "/?policy=threshold",
        "queue_size": f"/?gross_min={gross_min or 0}",
        "queue_turnover": "/?turnover_min=1&turnover_max=2",
        "queue_blocked": "/?status=blocked",
        "confirm_by_filter": f"/queue/confirm?decision=approved&gross_min={gross_min or 0}",
        "api_queue": "/api/queue?limit=200",
        "funds": "/funds",
        "proposal": f"/proposals/{largest}",
    }
    out = {}
    with TestClient(app) as client:
        for name, url in pages.items():
            times = []
            for _ in range(4):
                start = time.perf_counter()
                answer = client.get(url)
                times.append(time.perf_counter() - start)
                assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
            out[name] = round(sorted(times[1:])[1], 3)
    return out


def morning_timings(engine, outbox: Path, reports: Path, decisions: int = 1_000) -> dict:
    """What the morning costs at this size: the review view's pages, a bulk approval of
    ``decisions`` proposals (``warehouse.decide_many``, as the view's bulk forms do), their
    export, the report."""
    import shutil

    import sqlalchemy as sa

    from rebalance_pipeline import export, reporting, warehouse
    from rebalance_pipeline.review import queries

    def timed(fn):
        start = time.perf_counter()
        value = fn()
        return value, round(time.perf_counter() - start, 3)

    page, funds_page = timed(lambda: queries.list_funds(engine, queries.FundFilter(as_of=AS_OF)))
    _, filtered_page = timed(lambda: queries.list_funds(engine, queries.FundFilter(
        as_of=AS_OF, status="proposed", search="FUND0001", sort="turnover")))
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT proposal_id FROM rebalance.proposal WHERE as_of_date = :d "
                                   "AND status = 'pending_review' ORDER BY trade_count DESC, proposal_id LIMIT :n"),
                           {"d": AS_OF, "n": decisions}).scalars().all()
    _, proposal_page = timed(lambda: queries.proposal_detail(engine, ids[0]))
    pages = review_page_timings(engine)
    _, decide_seconds = timed(lambda: warehouse.decide_many(engine, ids, "approved", by="bench", channel="api"))
    shutil.rmtree(outbox, ignore_errors=True)
    exported, export_seconds = timed(lambda: export.export_approved_orders(engine, outbox, up_to=AS_OF))
    _, report_seconds = timed(lambda: reporting.build_drift_report(engine, AS_OF, reports))
    return {"funds_total": page.total, "funds_page_s": funds_page, "filtered_page_s": filtered_page,
            "proposal_page_s": proposal_page, "pages_s": pages, "decisions": len(ids), "decide_s": decide_seconds,
            "exported_proposals": exported.proposals, "exported_orders": exported.orders,
            "export_s": export_seconds, "report_s": report_seconds}


def shard_task_fixed_cost() -> dict:
    """Seconds a fresh process needs to import what each task kind imports (median of 3)."""
    probes = {
        "decide_shard (pipeline, no GX)": "import rebalance_pipeline.steps, rebalance_core.night",
        "validate_shard (with GX)": "import rebalance_pipeline.steps, rebalance_pipeline.validation, great_expectations",
    }
    out = {}
    for label, statement in probes.items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", statement], check=True,
                           env={**os.environ, "GX_ANALYTICS_ENABLED": "False"})
            times.append(time.perf_counter() - started)
        out[label] = round(sorted(times)[1], 2)
    return out


def landing_for(funds: int, holdings: int, securities: int, basic: bool, models: int = 0) -> Path:
    from rebalance_pipeline import settings
    from rebalance_pipeline.sample import generate

    kind = ("basic" if basic else "full") + (f"-m{models}" if models else "")
    landing = settings.home() / f"bench-landing-{funds}x{holdings}-{kind}"
    if not (landing / AS_OF.isoformat() / "positions.csv").exists():
        print(f"generating {funds:,} funds x {holdings} holdings ({kind}) in {landing} ...", flush=True)
        generate(landing, AS_OF, days=1, funds=funds, holdings=holdings, securities=securities, full_engine=not basic,
                 models=models)
    return landing


def measure(landing: Path, runs: int, shards: int | None, morning: bool) -> dict:
    """COPY floor, then the night in a child process on a fresh database: timings and peak RSS."""
    import sqlalchemy as sa

    from rebalance_pipeline import warehouse

    folder = landing / AS_OF.isoformat()
    server = warehouse.get_engine()
    name = f"rebalance_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = server.url.set(database=name).render_as_string(hide_password=False)
    try:
        copy_seconds = [baseline_copy_seconds(url, folder) for _ in range(2)]
        started = time.perf_counter()
        command = [sys.executable, __file__, "--runs", str(runs), "--child", url, str(landing)]
        if shards:
            command += ["--shards", str(shards)]
        if not morning:
            command += ["--no-morning"]
        out = subprocess.run(command, capture_output=True, text=True,
                             env={**os.environ, "GX_ANALYTICS_ENABLED": "False"})
        wall = time.perf_counter() - started
        if out.returncode != 0:
            sys.exit(out.stderr[-4000:])
        result = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        warehouse._engine_for.cache_clear()
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                         {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    result.update(copy_seconds=copy_seconds, baseline=min(copy_seconds), wall=wall)
    return result


def matrix(args) -> None:
    """Funds x shards: one first run each, a fresh process and database per cell."""
    rows = []
    for funds in args.matrix_funds:
        landing = landing_for(funds, args.holdings, args.securities, args.basic)
        for shards in args.matrix_shards:
            result = measure(landing, runs=1, shards=shards, morning=False)
            run = result["runs"][0]
            rows.append((funds, funds * args.holdings, shards, run["seconds"], result["baseline"],
                         result["peak_gib"], run["steps"]))
            print(f"{funds:>8,} funds {funds * args.holdings:>11,} positions  shards {shards:>2}: "
                  f"{run['seconds']:7.1f} s  COPY {result['baseline']:6.2f} s  ratio {run['seconds'] / result['baseline']:5.1f}  "
                  f"peak {result['peak_gib']:.2f} GiB  steps {run['steps']}", flush=True)
    print("\n| funds | positions | shards | night (s) | COPY floor (s) | ratio | peak RSS of any process (GiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for funds, positions, shards, seconds, baseline, peak, _ in rows:
        print(f"| {funds:,} | {positions:,} | {shards} | {seconds:.1f} | {baseline:.2f} | {seconds / baseline:.1f} | "
              f"{peak:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--funds", type=int, default=10_000)
    parser.add_argument("--holdings", type=int, default=100)
    parser.add_argument("--securities", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=2, help="runs of the same date (the 2nd is a rerun)")
    parser.add_argument("--shards", type=int, default=None, help="shards of funds (default: chosen by size)")
    parser.add_argument("--basic", action="store_true",
                        help="contract files only (default: full engine: costs, tax lots for 10%% of funds, flows)")
    parser.add_argument("--models", type=int, default=0,
                        help="model portfolios in the book (most funds follow one; default: none)")
    parser.add_argument("--matrix", action="store_true", help="a table of funds x shards (first runs only)")
    parser.add_argument("--matrix-funds", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--matrix-shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--no-morning", action="store_true", help="skip the morning-after measurements")
    parser.add_argument("--child", nargs=2, metavar=("URL", "LANDING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.runs, args.shards, morning=not args.no_morning)
        return
    if args.matrix:
        matrix(args)
        return

    landing = landing_for(args.funds, args.holdings, args.securities, args.basic, args.models)
    folder = landing / AS_OF.isoformat()
    rows = {f.stem: sum(1 for _ in f.open()) - 1 for f in sorted(folder.glob("*.csv"))}
    result = measure(landing, args.runs, args.shards, morning=not args.no_morning)
    baseline, copy_seconds, peak_gib = result["baseline"], result["copy_seconds"], result["peak_gib"]

    first = result["runs"][0]
    print(f"input rows: {rows}")
    print(f"baseline COPY of the input files: {baseline:.2f} s (runs: {', '.join(f'{s:.2f}' for s in copy_seconds)})")
    for i, run in enumerate(result["runs"]):
        label = "first run" if i == 0 else "rerun"
        print(f"{label}: {run['seconds']:.2f} s = {run['seconds'] / baseline:.2f} x COPY; steps {run['steps']}; "
              f"{run['funds']:,} funds, {run['proposed']:,} proposed, {run['trades']:,} trades")
    m = result["morning"]
    if m:
        print(f"morning: funds page ({m['funds_total']:,} funds, 200 shown) {m['funds_page_s']:.2f} s, filtered "
              f"{m['filtered_page_s']:.2f} s, largest proposal {m['proposal_page_s']:.2f} s; {m['decisions']:,} "
              f"approvals {m['decide_s']:.2f} s ({m['decisions'] / max(m['decide_s'], 1e-9):,.0f}/s); export of "
              f"{m['exported_proposals']:,} proposals ({m['exported_orders']:,} orders) {m['export_s']:.2f} s; "
              f"HTML report {m['report_s']:.2f} s")
        slowest = max(m["pages_s"].values())
        print("review pages (HTML, median of 3): " + ", ".join(f"{k} {v:.3f} s" for k, v in m["pages_s"].items())
              + f"; RESULT slowest page {slowest:.3f} s (target < 0.2)")
    print(f"whole process (imports, migrate, {args.runs} runs, morning): {result['process_seconds']:.1f} s "
          f"(wall {result['wall']:.1f} s)")
    print(f"fixed cost of a shard task's imports in a fresh process: {shard_task_fixed_cost()}")
    print(f"peak memory of any one process of the run: {peak_gib:.2f} GiB")
    ratio = first["seconds"] / baseline
    print(f"RESULT ratio={ratio:.2f} (target <= 3) peak_gib={peak_gib:.2f} (target <= 2 at 1M, <= 4 at 10M)")


if __name__ == "__main__":
    main()
