-- Staged executions of other runs older than :age (runs that never published).
DELETE FROM rebalance.execution_stage WHERE created_at < now() - :age AND run_id <> :r
