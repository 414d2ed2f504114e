-- A transaction-level advisory lock: :ns is the project's namespace, :key the date or task.
SELECT pg_advisory_xact_lock(:ns, :key)
