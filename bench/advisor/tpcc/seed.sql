-- TPC-C initial population (spec clause 4.3.3.1), generated server-side for
-- :W warehouses: 100 000 items; per warehouse 100 000 stock rows and 10
-- districts; per district 3 000 customers, 3 000 orders (the last 900 of
-- them undelivered, in new_order) with 5-15 lines each.
-- Simplifications: random strings are md5-based, not a-string/n-string.

create function pg_temp.last_name(n int) returns text language sql immutable as $$
    select (array['BAR','OUGHT','ABLE','PRI','PRES','ESE','ANTI','CALLY','ATION','EING'])[n / 100 + 1]
        || (array['BAR','OUGHT','ABLE','PRI','PRES','ESE','ANTI','CALLY','ATION','EING'])[n / 10 % 10 + 1]
        || (array['BAR','OUGHT','ABLE','PRI','PRES','ESE','ANTI','CALLY','ATION','EING'])[n % 10 + 1]
$$;

insert into item
select i, 1 + (i * 37) % 10000, 'item-' || md5(i::text)::varchar(19),
       1 + (i * 7919 % 9900) / 100.0,
       case when i % 10 = 0 then 'ORIGINAL ' else '' end || md5(i::text)
from generate_series(1, 100000) i;

insert into warehouse
select w, 'wh-' || w, 'street1', 'street2', 'city', 'ST', '123456789', (w % 20) / 100.0, 300000
from generate_series(1, :W) w;

insert into district
select w, d, 'd-' || d, 'street1', 'street2', 'city', 'ST', '123456789', (d % 20) / 100.0, 30000, 3001
from generate_series(1, :W) w, generate_series(1, 10) d;

insert into customer
select w, d, c,
       substr(md5(c::text || d), 1, 8 + c % 8), 'OE',
       pg_temp.last_name(case when c <= 1000 then c - 1
                              else ((floor(random() * 256)::int | floor(random() * 1000)::int) + 157) % 1000 end),
       'street1', 'street2', 'city', 'ST', '123456789', lpad((c * 7919)::text, 16, '0'),
       now(), case when c % 10 = 0 then 'BC' else 'GC' end, 50000, (c % 5000) / 10000.0,
       -10, 10, 1, 0, repeat(md5(c::text || w), 10)
from generate_series(1, :W) w, generate_series(1, 10) d, generate_series(1, 3000) c;

insert into history
select c, d, w, d, w, now(), 10, md5(c::text)::varchar(24)
from generate_series(1, :W) w, generate_series(1, 10) d, generate_series(1, 3000) c;

-- o_c_id: a permutation of 1..3000 per district (7 is prime to 3000).
insert into orders
select w, d, o, (o * 7 + w * 13 + d) % 3000 + 1,
       now() - (3000 - o) * interval '1 minute',
       case when o < 2101 then 1 + o % 10 end,
       5 + (o * 31 + d * 17 + w * 7) % 11, 1
from generate_series(1, :W) w, generate_series(1, 10) d, generate_series(1, 3000) o;

insert into new_order
select w, d, o
from generate_series(1, :W) w, generate_series(1, 10) d, generate_series(2101, 3000) o;

insert into order_line
select o.tenant_id, o.o_d_id, o.o_id, n,
       1 + floor(random() * 100000)::int, o.tenant_id,
       case when o.o_id < 2101 then o.o_entry_d end, 5,
       case when o.o_id < 2101 then 0 else round((random() * 9999)::numeric / 100, 2) end,
       md5(o.o_id::text || n)::char(24)
from orders o, generate_series(1, o.o_ol_cnt) n;

insert into stock
select w, i, 10 + (i * 7 + w) % 91,
       md5(i::text || 1)::char(24), md5(i::text || 2)::char(24), md5(i::text || 3)::char(24),
       md5(i::text || 4)::char(24), md5(i::text || 5)::char(24), md5(i::text || 6)::char(24),
       md5(i::text || 7)::char(24), md5(i::text || 8)::char(24), md5(i::text || 9)::char(24),
       md5(i::text || 10)::char(24),
       0, 0, 0, case when i % 10 = 0 then 'ORIGINAL ' else '' end || md5(i::text || w)
from generate_series(1, :W) w, generate_series(1, 100000) i;
