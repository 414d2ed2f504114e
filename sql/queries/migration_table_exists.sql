-- The bookkeeping table's oid when it exists (NULL on a new warehouse).
SELECT to_regclass(:table)
