-- Which of :names the export ledger already records (order files, block and allocation files).
SELECT file_name FROM rebalance.order_export WHERE file_name = ANY(:names)
UNION SELECT blocks_file FROM rebalance.block_export WHERE blocks_file = ANY(:names)
UNION SELECT allocations_file FROM rebalance.block_export WHERE allocations_file = ANY(:names)
