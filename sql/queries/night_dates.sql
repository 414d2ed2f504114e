-- The :n most recent business dates that have results, newest first.
SELECT DISTINCT as_of_date FROM rebalance.fund_summary ORDER BY as_of_date DESC LIMIT :n
