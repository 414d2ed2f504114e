-- The ledger row of one proposal exported within a block batch.
INSERT INTO rebalance.order_export (proposal_id, fund_id, as_of_date, file_name, order_count, run_id,
                                    block_batch_id)
VALUES (:proposal_id, :fund_id, :as_of_date, :file_name, :order_count, :run_id, :block_batch_id)
