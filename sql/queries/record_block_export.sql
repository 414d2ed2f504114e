-- The ledger row of one block batch (its blocks and allocations files).
INSERT INTO rebalance.block_export (block_batch_id, blocks_file, allocations_file, block_count,
                                    allocation_count, proposal_count, run_id)
VALUES (:block_batch_id, :blocks_file, :allocations_file, :block_count, :allocation_count, :proposal_count, :run_id)
