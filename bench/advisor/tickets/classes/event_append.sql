-- The write-hot path: an event appended to a (mostly recent) ticket.
\set tk :N - random_exponential(0, :N - 1, 10)
\set kind random(1, 6)
INSERT INTO events (tenant_id, ticket_id, kind, created_at, payload) SELECT tenant_id, id, :kind, now(), md5(random()::text) || md5(random()::text) FROM tickets WHERE id = :tk;
