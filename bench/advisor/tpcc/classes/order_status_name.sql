-- Order-Status (clause 2.6), customer by last name (first by c_first),
-- then the customer's latest order and its lines.
\set w random(1, :W)
\set d random(1, 10)
\set n ((random(0, 255) | random(0, 999)) + 157) % 1000
\set n1 :n / 100 + 1
\set n2 (:n / 10) % 10 + 1
\set n3 :n % 10 + 1
-- the spec's last name from three syllables (clause 4.3.2.3), as a string parameter
SELECT (array['BAR','OUGHT','ABLE','PRI','PRES','ESE','ANTI','CALLY','ATION','EING'])[:n1] || (array['BAR','OUGHT','ABLE','PRI','PRES','ESE','ANTI','CALLY','ATION','EING'])[:n2] || (array['BAR','OUGHT','ABLE','PRI','PRES','ESE','ANTI','CALLY','ATION','EING'])[:n3] AS c_last \gset
SELECT c_id AS c, c_balance, c_first, c_middle FROM customer WHERE tenant_id = :w AND c_d_id = :d AND c_last = :c_last ORDER BY c_first LIMIT 1 \gset
SELECT o_id, o_entry_d, o_carrier_id FROM orders WHERE tenant_id = :w AND o_d_id = :d AND o_c_id = :c ORDER BY o_id DESC LIMIT 1 \gset
SELECT ol_i_id, ol_supply_w_id, ol_quantity, ol_amount, ol_delivery_d FROM order_line WHERE tenant_id = :w AND ol_d_id = :d AND ol_o_id = :o_id;
