-- Swaps the run's sealed leaves in as the date's partitions (rebalance.night_publish).
SELECT rebalance.night_publish(:r, :d)
