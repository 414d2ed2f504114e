-- How many proposals proposal_list.sql selects without its limit.
SELECT count(*) FROM rebalance.proposal
WHERE (CAST(:d AS date) IS NULL OR as_of_date = :d) AND (CAST(:st AS text) IS NULL OR status = :st)
