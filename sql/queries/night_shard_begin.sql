-- Opens (or reopens) a shard's leaves of the given tables for a run and date: the table
-- each leaf belongs to and the leaf's name (rebalance.night_shard_begin, a repeatable).
SELECT table_name, leaf_name FROM rebalance.night_shard_begin(:r, :d, :s, :t)
