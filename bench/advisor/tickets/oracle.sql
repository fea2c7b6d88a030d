-- Seven useful indexes on tickets (more than IndexPilot's default budget of
-- five per table) and the foreign-key index on the write-hot events table.
-- Nothing for status_report: status = 'closed' matches ~88 % of the rows.

-- queue_list, queue_claim (status IN ('new','open') / = 'new', ORDER BY created_at
-- LIMIT): partial on the rare status values, so the index holds ~5 % of the rows and
-- returns the oldest first; status = 'new' is proven to imply the predicate.
create index oracle_tickets_queue on tickets (tenant_id, created_at) where status in ('new', 'open');

-- email_lookup (lower(requester_email) = lower($2)): an expression index; the
-- address already names the tenant, so tenant_id in front would only widen it.
create index oracle_tickets_email on tickets (lower(requester_email));

-- json_contract (custom ->> 'contract' = $2, three tenants): partial on the rows
-- that have the key (~2 % of the table); tenant first because contract numbers repeat
-- across tenants. The equality proves IS NOT NULL, also in generic plans.
create index oracle_tickets_contract on tickets (tenant_id, (custom ->> 'contract'))
    where (custom ->> 'contract') is not null;

-- assignee_inbox (assignee_id = $2 AND status <> 'closed' ORDER BY updated_at DESC
-- LIMIT 20): the agent id is global, so no tenant prefix; partial on open work
-- (~12 % of rows), read backwards in updated_at order.
create index oracle_tickets_inbox on tickets (assignee_id, updated_at) where status <> 'closed';

-- recent_list (tenant_id = $1 ORDER BY created_at DESC LIMIT 25), and the tenant
-- filter of status_report: the tenant, then the sort column.
create index oracle_tickets_recent on tickets (tenant_id, created_at);

-- org_tickets (org_id = $2 ORDER BY created_at DESC LIMIT 20): org ids are global
-- and selective, so (org_id, created_at) without the tenant.
create index oracle_tickets_org on tickets (org_id, created_at);

-- external_lookup (external_id = $1, no tenant): sparse column, ~3 % filled;
-- IS NOT NULL partial keeps only the filled rows.
create index oracle_tickets_external on tickets (external_id) where external_id is not null;

-- ticket_events (ticket_id = $1 ORDER BY created_at DESC LIMIT 20): the foreign
-- key, then created_at so a hot ticket's latest events need no sort. The one
-- index on the write-hot table: every event insert pays for it.
create index oracle_events_ticket on events (ticket_id, created_at);
