-- A webhook from the linked tracker: find the ticket by its external id
-- (no tenant in the statement).
\set x random(1, :N / 33) * 330 + 7
SELECT id, tenant_id, status FROM tickets WHERE external_id = :x;
