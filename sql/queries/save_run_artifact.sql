-- A run's artifact (scratch between tasks), written or replaced.
INSERT INTO rebalance.run_artifact (run_id, name, payload) VALUES (:r, :n, :p)
ON CONFLICT (run_id, name) DO UPDATE SET payload = EXCLUDED.payload, created_at = now()
