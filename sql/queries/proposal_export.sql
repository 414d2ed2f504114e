-- The order file a proposal (:id) was exported in, if any.
SELECT file_name, order_count, exported_at FROM rebalance.order_export WHERE proposal_id = :id
