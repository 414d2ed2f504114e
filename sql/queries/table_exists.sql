-- Whether a warehouse table exists (:name, e.g. 'rebalance.basket'): the read model reads a
-- table a later migration added only where it is there.
SELECT to_regclass(CAST(:name AS text)) IS NOT NULL
