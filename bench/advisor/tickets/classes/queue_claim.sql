-- Work queue: an agent claims the tenant's oldest new ticket.
\set t random_zipfian(1, :T, 1.05)
\set agent :t * 10 + random(0, 9)
UPDATE tickets SET status = 'in_progress', assignee_id = :agent, updated_at = now() WHERE id = (SELECT id FROM tickets WHERE tenant_id = :t AND status = 'new' ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED);
