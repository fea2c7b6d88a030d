-- Order-Status (clause 2.6), customer by id: the customer's latest order
-- and its lines.
\set w random(1, :W)
\set d random(1, 10)
\set c ((random(0, 1023) | random(1, 3000)) + 259) % 3000 + 1
SELECT c_balance, c_first, c_middle, c_last FROM customer WHERE tenant_id = :w AND c_d_id = :d AND c_id = :c;
SELECT o_id, o_entry_d, o_carrier_id FROM orders WHERE tenant_id = :w AND o_d_id = :d AND o_c_id = :c ORDER BY o_id DESC LIMIT 1 \gset
SELECT ol_i_id, ol_supply_w_id, ol_quantity, ol_amount, ol_delivery_d FROM order_line WHERE tenant_id = :w AND ol_d_id = :d AND ol_o_id = :o_id;
