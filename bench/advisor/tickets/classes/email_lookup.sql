-- Case-insensitive lookup of a requester's tickets by e-mail address.
\set t random_zipfian(1, :T, 1.05)
\set r random(0, 999)
SELECT 'req' || :r::text || '@t' || :t::text || '.example.com' AS email \gset
SELECT id, subject, status, created_at FROM tickets WHERE tenant_id = :t AND lower(requester_email) = lower(:email);
