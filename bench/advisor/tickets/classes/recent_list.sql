-- A tenant's newest tickets (the default list view).
\set t random_zipfian(1, :T, 1.05)
SELECT id, subject, status, priority, updated_at FROM tickets WHERE tenant_id = :t ORDER BY created_at DESC LIMIT 25;
