-- Work queue: a tenant's oldest unhandled tickets.
\set t random_zipfian(1, :T, 1.05)
SELECT id, subject, priority, created_at FROM tickets WHERE tenant_id = :t AND status IN ('new', 'open') ORDER BY created_at LIMIT 20;
