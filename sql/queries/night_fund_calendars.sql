-- The trading calendars of the funds (XNYS where a fund names none).
SELECT DISTINCT coalesce(nullif(calendar, ''), 'XNYS') FROM rebalance.fund_ref ORDER BY 1
