-- An agent's open work, most recently touched first.
\set t random_zipfian(1, :T, 1.05)
\set agent :t * 10 + random(0, 9)
SELECT id, subject, status, priority, updated_at FROM tickets WHERE tenant_id = :t AND assignee_id = :agent AND status <> 'closed' ORDER BY updated_at DESC LIMIT 20;
