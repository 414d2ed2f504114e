-- The executions an earlier run of the date recorded; an operator's word is never touched by a night.
DELETE FROM rebalance.execution WHERE as_of_date = :d AND source <> 'operator'
