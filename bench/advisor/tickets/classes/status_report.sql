-- The trap: a dashboard over closed tickets, ~88 % of a tenant's rows; an
-- index on status cannot narrow it.
\set t random_zipfian(1, :T, 1.05)
SELECT priority, count(*), max(updated_at) FROM tickets WHERE tenant_id = :t AND status = 'closed' GROUP BY priority;
