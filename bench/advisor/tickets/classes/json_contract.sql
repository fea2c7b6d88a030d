-- A custom field only tenants 2, 9 and 31 use: tickets of a contract.
\set k random(1, 3)
\set t CASE WHEN :k = 1 THEN 2 WHEN :k = 2 THEN 9 ELSE 31 END
\set contract random(1, 900)
SELECT id, subject, status FROM tickets WHERE tenant_id = :t AND custom ->> 'contract' = :contract;
