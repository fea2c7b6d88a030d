-- An agent closes a ticket.
\set id random(1, :N)
UPDATE tickets SET status = 'closed', updated_at = now() WHERE id = :id;
