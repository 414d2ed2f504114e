"""Summarise a py-spy ``--format raw`` profile (collapsed stacks: ``frame;frame;... count``):
seconds by function (inclusive, a function counted once per sample however deep it
recurs), and, for the functions given with ``--inside``, seconds by their direct callees.

    py-spy record --rate 20 --format raw -o sim.collapsed -- python -m rebalance_pipeline.cli simulate ...
    python bench/collapsed_summary.py sim.collapsed --rate 20 --inside simulate decide_night validate
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>[^ ]+) \((?P<file>[^:)]+)(?::\d+)?\)$")


def parse(path: Path):
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            m = FRAME.match(frame.strip())
            frames.append((m["function"], m["file"]) if m else (frame.strip(), ""))
        yield frames, int(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--rate", type=float, default=100.0, help="py-spy's samples per second")
    parser.add_argument("--inside", nargs="*", default=[], help="functions whose direct callees to list")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    total, by_function = 0, Counter()
    callees: dict[str, Counter] = {name: Counter() for name in args.inside}
    for frames, count in parse(args.profile):
        total += count
        for name in {f for f, _ in frames}:
            by_function[name] += count
        for name in args.inside:
            seen = set()
            for i, (function, _) in enumerate(frames):
                if function == name and i + 1 < len(frames):
                    callee = frames[i + 1][0]
                    if callee not in seen:   # once per sample
                        callees[name][callee] += count
                        seen.add(callee)
                    break
            else:
                continue
    seconds = 1.0 / args.rate
    print(json.dumps({
        "samples": total, "seconds": round(total * seconds, 2),
        "by_function_s": {k: round(v * seconds, 2) for k, v in by_function.most_common(args.top)},
        **{f"inside_{name}_s": {k: round(v * seconds, 2) for k, v in c.most_common(args.top)}
           for name, c in callees.items()},
    }, indent=1))


if __name__ == "__main__":
    main()
