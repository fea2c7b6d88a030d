-- A new ticket.
\set t random_zipfian(1, :T, 1.05)
\set k random(1, 100000)
INSERT INTO tickets (tenant_id, org_id, requester_email, status, priority, subject, created_at, updated_at, body) VALUES (:t, :t * 1000 + :k % 200, 'Req' || :k::text || '@T' || :t::text || '.Example.com', 'new', 1 + :k % 5, 'New ticket', now(), now(), 'body');
