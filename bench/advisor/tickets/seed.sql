-- :N tickets over :T tenants whose sizes follow Zipf (s = 1.05: the largest
-- has ~18 % of the rows, the smallest a few hundred), :E events skewed to
-- recent tickets. Tickets are stored tenant by tenant (as after years of
-- per-tenant imports); ids and created_at are scattered over the tenants.

create temp table tenant_range as
select t,
       floor(:N * (sum(w) over (order by t) - w) / sum(w) over ())::bigint as lo,
       floor(:N * sum(w) over (order by t) / sum(w) over ())::bigint as hi
from (select t, 1.0 / power(t, 1.05) as w from generate_series(1, :T) t) z;

insert into tenants
select t, 'tenant-' || t, case when t % 5 = 0 then 'free' else 'pro' end from tenant_range;

-- p runs over each tenant's range; id = a permutation of 1..N (7919 is
-- prime to N); k = the ticket's rank within its tenant.
insert into tickets (id, tenant_id, org_id, requester_email, assignee_id, status, priority,
                     subject, external_id, custom, created_at, updated_at, body)
select id, t, t * 1000 + k % 200, 'Req' || (k / 4) || '@T' || t || '.Example.com',
       case when s = 'new' then null else t * 10 + k % 10 end,
       s, 1 + k % 5, 'Ticket ' || id,
       case when id % 33 = 0 then id * 10 + 7 end,
       case when t in (2, 9, 31) then jsonb_build_object('contract', k::text, 'region', 'eu') else '{}' end,
       created_at, created_at + (random() * 30) * interval '1 day', repeat(md5(id::text), 4)
from (
    select ((p - 1) * 7919) % :N + 1 as id, t, p - lo as k,
           now() - interval '730 days' * (1 - (((p - 1) * 7919) % :N + 1)::float8 / :N) as created_at,
           (case when r < 0.02 then 'new' when r < 0.05 then 'open' when r < 0.08 then 'in_progress'
                 when r < 0.12 then 'resolved' else 'closed' end) as s
    -- r must refer to p, or PostgreSQL computes the subquery once for all rows.
    from tenant_range, generate_series(lo + 1, hi) p, lateral (select random() + 0 * p as r) rr
) x;
select setval('tickets_id_seq', :N) as tickets_seq \gset

insert into events (id, tenant_id, ticket_id, kind, created_at, payload)
select g, t.tenant_id, t.id, 1 + g % 6, t.created_at + (g % 1000) * interval '1 minute',
       md5(g::text) || md5(t.id::text)
from (select g, greatest(1, :N - floor(:N * power(random(), 2))::bigint) as tk
      from generate_series(1, :E) g) x
join tickets t on t.id = x.tk;
select setval('events_id_seq', :E) as events_seq \gset
