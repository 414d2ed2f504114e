-- A repeatable migration, (re)applied.
INSERT INTO rebalance.schema_repeatable (name, checksum) VALUES (:n, :c)
ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()
