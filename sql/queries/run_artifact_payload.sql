-- A run's artifact, by name.
SELECT payload FROM rebalance.run_artifact WHERE run_id = :r AND name = :n
