-- A ticket's latest events (foreign-key lookup), recent tickets most often.
\set tk :N - random_exponential(0, :N - 1, 10)
SELECT kind, created_at, payload FROM events WHERE ticket_id = :tk ORDER BY created_at DESC LIMIT 20;
