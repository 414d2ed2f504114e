"""Where a night's time goes: one night of N funds x H holdings under pyinstrument, in one
process (its shards run one after the other, ``workers=1``, so every shard is in the
profile; the shard count is the one a night of that size chooses), on a fresh database,
libraries imported first (the time after the fixed cost).

Writes the pyinstrument text tree (``--out``.txt) and prints a JSON summary: seconds by
step (ingest, each shard's checks and decision, publish), inside a shard by part (reading
the shard's frames, the GX checks: context, suites and validation; the decision by
function; writing: COPY by table, keys), so the doc's table can be built from it.

    python bench/profile_night.py --funds 10000 --holdings 100 --out .rebalance/prof/night-1m
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

AS_OF = dt.date(2014, 1, 2)


def inclusive(frame, names: set[str], out: dict[str, float], inside: bool = False) -> None:
    """Seconds by function name for the outermost call of each name (a recursive or nested
    call of the same name is not counted twice)."""
    name = frame.function
    counted = name in names and not inside
    if counted:
        out[name] += frame.time
    for child in frame.children:
        inclusive(child, names, out, inside or counted)


def children_of(frame, parent: str, out: dict[str, float], depth: int = 1) -> None:
    """Seconds of the callees (``depth`` levels of project code down) of every call of
    ``parent``, summed by callee name."""
    if frame.function == parent:
        for child in frame.children:
            _project_callees(child, out, depth)
        return
    for child in frame.children:
        children_of(child, parent, out, depth)


def _project_callees(frame, out: dict[str, float], depth: int) -> None:
    path = frame.file_path or ""
    if "rebalance_core" in path or "rebalance_pipeline" in path:
        out[frame.function] += frame.time
        return
    if depth > 0:   # a library frame (pandas, numpy) called directly: count it under its name
        out[f"{frame.function} ({Path(path).parent.name}/{Path(path).name})"] += frame.time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--funds", type=int, default=10_000)
    parser.add_argument("--holdings", type=int, default=100)
    parser.add_argument("--securities", type=int, default=5_000)
    parser.add_argument("--shards", type=int, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations  # noqa: F401  (warm: the time after the fixed cost)
    from bench_nightly import landing_for
    from bench_speed import Database
    from pyinstrument import Profiler

    from rebalance_pipeline import steps, validation, warehouse  # noqa: F401

    landing = landing_for(args.funds, args.holdings, args.securities, basic=False)
    summary: dict = {"funds": args.funds, "holdings": args.holdings}
    with Database() as db:
        engine = warehouse.get_engine(db.url)
        warehouse.migrate(engine)
        profiler = Profiler(interval=0.002)
        start = time.perf_counter()
        profiler.start()
        steps.run_nightly(AS_OF, landing, engine, shards=args.shards, workers=1)
        profiler.stop()
        summary["wall_s"] = time.perf_counter() - start
    session = profiler.last_session
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".txt").write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    session.save(str(args.out.with_suffix(".pyisession")))
    root = session.root_frame()
    steps_names = {"ingest", "validate_shard", "decide_shard", "publish_step", "_shard_frames", "_night_frames",
                   "validate", "get_context", "build_checks", "decide_night", "write_shard", "write_night_rows",
                   "publish_night", "copy_frame", "read_landing", "read_file_split", "add_expectation"}
    by_name: dict[str, float] = defaultdict(float)
    inclusive(root, steps_names, by_name)
    summary["by_step_s"] = {k: round(v, 3) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])}
    for parent in ("ingest", "validate", "decide_night", "write_shard", "publish_night", "decide_shard",
                   "validate_shard"):
        callees: dict[str, float] = defaultdict(float)
        children_of(root, parent, callees)
        summary[f"inside_{parent}_s"] = {k: round(v, 3) for k, v in sorted(callees.items(), key=lambda kv: -kv[1])
                                         if v >= 0.05}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
