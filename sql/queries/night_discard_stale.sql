-- Drops the leaves of runs that never published and are older than :age.
SELECT rebalance.night_discard_stale(:age)
