-- A run's staged executions, once published.
DELETE FROM rebalance.execution_stage WHERE run_id = :r
