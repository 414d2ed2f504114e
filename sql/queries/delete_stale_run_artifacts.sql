-- Scratch artifacts of other runs older than :age (runs that never published).
DELETE FROM rebalance.run_artifact WHERE created_at < now() - :age AND run_id <> :r
