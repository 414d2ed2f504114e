"""Shards: the night's funds split into independent groups that run in parallel.

Funds never interact in a night's decision, so any split gives the same result; the split
only has to be stable (a fund is in the same shard in every task that reads it, on every
machine) and even. A fund's shard is a hash of its id (pandas' SipHash with its fixed key,
the same in every process), modulo the shard count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Positions per shard the automatic choice aims at: big enough that a shard's fixed cost
# (a process, its imports, its tables) is small beside its work, small enough that a
# shard's memory stays a few hundred MB.
POSITIONS_PER_SHARD = 1_000_000
MAX_AUTO_SHARDS = 64


def shard_of(fund_ids: pd.Series | np.ndarray, shards: int) -> np.ndarray:
    """The shard (0 .. shards-1) of each fund id."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    values = np.asarray(fund_ids, dtype=object)
    if shards == 1 or len(values) == 0:
        return np.zeros(len(values), dtype="int64")
    return (pd.util.hash_array(values, categorize=True) % np.uint64(shards)).astype("int64")


def choose_shard_count(positions: int, cores: int) -> int:
    """Shards for a night of ``positions`` rows: at least one per core once the night is big
    enough to pay for the processes, and about POSITIONS_PER_SHARD positions each."""
    if positions < 200_000:
        return 1
    by_size = -(-positions // POSITIONS_PER_SHARD)
    return int(min(MAX_AUTO_SHARDS, max(by_size, cores)))
