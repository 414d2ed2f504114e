-- A table's NUMERIC columns with 10 or more decimals, and their scale (atttypmod encodes
-- precision and scale; a plain numeric has -1 and is left out).
SELECT attname, (atttypmod - 4) & 65535
FROM pg_catalog.pg_attribute
WHERE attrelid = CAST(:t AS regclass) AND atttypid = 'numeric'::regtype AND atttypmod > 0
  AND (atttypmod - 4) & 65535 >= 10
