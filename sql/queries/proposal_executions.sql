-- What was reported done of a proposal, grouped by night, source and status.
SELECT as_of_date, source, status, count(*) AS orders, min(recorded_by) AS recorded_by,
       max(recorded_at) AS recorded_at, max(note) AS note
FROM rebalance.execution
WHERE proposal_id = :id
GROUP BY as_of_date, source, status
ORDER BY as_of_date, max(recorded_at)
