-- Twins of the given proposals: per proposal, the fund's latest OTHER proposal of the same
-- date or later whose status already approves its drift (:twin_states, from
-- rebalance_core.lifecycle.TWIN_STATES). The lifecycle refuses an approval that has one (a
-- person's in warehouse.decide, the rule's at publish): approving both would send the same
-- drift to the market twice. Proposals without a twin are left out.
SELECT DISTINCT ON (p.proposal_id)
       p.proposal_id, o.proposal_id AS twin_id, o.as_of_date AS twin_date, o.status AS twin_status
FROM rebalance.proposal p
JOIN rebalance.proposal o
  ON o.fund_id = p.fund_id
 AND o.status = ANY(CAST(:twin_states AS text[]))
 AND o.as_of_date >= p.as_of_date
 AND o.proposal_id <> p.proposal_id
WHERE p.proposal_id = ANY(CAST(:ids AS text[]))
ORDER BY p.proposal_id, o.as_of_date DESC, o.proposal_id
