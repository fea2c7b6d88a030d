-- The newest tickets of one requester organisation.
\set t random_zipfian(1, :T, 1.05)
\set org :t * 1000 + random(0, 199)
SELECT id, subject, status, created_at FROM tickets WHERE tenant_id = :t AND org_id = :org ORDER BY created_at DESC LIMIT 20;
