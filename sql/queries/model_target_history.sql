-- Every model version stored before :d, in the order it was stored.
SELECT valid_from, source_row, model_id, security_id, target_weight, effective_date
FROM rebalance.model_target_ref
WHERE valid_from < :d
ORDER BY valid_from, source_row
