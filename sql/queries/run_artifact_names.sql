-- The names of a run's artifacts starting with :p.
SELECT name FROM rebalance.run_artifact WHERE run_id = :r AND starts_with(name, :p) ORDER BY name
