-- A multi-tenant help desk: tenants, their tickets (the main table) and an
-- append-only event log per ticket. Launch indexes: primary keys only.

create table tenants (
    id   int primary key,
    name text not null,
    plan text not null
);

create table tickets (
    id              bigserial primary key,
    tenant_id       int not null references tenants (id),
    org_id          int not null,          -- the requester's organisation (global id)
    requester_email text not null,         -- as typed, mixed case
    assignee_id     int,                   -- the agent (global id); null while new
    status          text not null,         -- new, open, in_progress, resolved, closed (~88 %)
    priority        smallint not null,
    subject         text not null,
    external_id     bigint,                -- id in a linked tracker; ~3 % of tickets
    custom          jsonb not null default '{}',  -- per-tenant fields; 'contract' used by 3 tenants
    created_at      timestamptz not null,
    updated_at      timestamptz not null,
    body            text not null
);

create table events (
    id         bigserial primary key,
    tenant_id  int not null,
    ticket_id  bigint not null references tickets (id),
    kind       smallint not null,
    created_at timestamptz not null,
    payload    text not null
);
