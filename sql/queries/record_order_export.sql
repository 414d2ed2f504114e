-- The ledger row of one proposal's order file.
INSERT INTO rebalance.order_export (proposal_id, fund_id, as_of_date, file_name, order_count, run_id)
VALUES (:proposal_id, :fund_id, :as_of_date, :file_name, :order_count, :run_id)
