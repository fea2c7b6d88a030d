-- The usual TPC-C secondary indexes, which the schema leaves out.

-- payment and order-status by last name (WHERE w, d, c_last ORDER BY c_first):
-- equality columns first, then c_first so the rows come out in the order asked.
create index oracle_customer_name on customer (tenant_id, c_d_id, c_last, c_first);

-- order-status (a customer's latest order: WHERE w, d, o_c_id ORDER BY o_id DESC
-- LIMIT 1): the three equalities, then o_id read backwards; stops at one row.
create index oracle_orders_customer on orders (tenant_id, o_d_id, o_c_id, o_id);
