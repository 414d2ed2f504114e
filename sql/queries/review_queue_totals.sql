-- The filtered review queue by kind, status and base currency: items and gross notional
-- (never summed across currencies). The three parts (review_queue_proposals, _blocked and
-- _compliance.sql) are put in where the names in braces stand, by read_model.queue.
SELECT 'proposal' AS kind, status, base_currency, count(*) AS items, sum(gross_notional) AS gross
FROM ({proposals}) p GROUP BY status, base_currency
UNION ALL SELECT 'blocked', 'blocked', NULL, count(*), NULL FROM ({blocked}) b HAVING count(*) > 0
UNION ALL SELECT 'compliance', 'compliance', NULL, count(*), NULL FROM ({compliance}) c HAVING count(*) > 0
ORDER BY kind DESC, status, base_currency
