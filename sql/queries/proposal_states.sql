-- Where the proposals :ids stand now, in the given order (unknown ids too, status NULL).
SELECT i.proposal_id, p.fund_id, p.as_of_date, p.status, p.reviewed_by, p.reviewed_at,
       p.first_approved_by, p.first_approved_at, p.base_currency, p.gross_notional
FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS i (proposal_id, n)
LEFT JOIN rebalance.proposal p USING (proposal_id)
ORDER BY i.n
