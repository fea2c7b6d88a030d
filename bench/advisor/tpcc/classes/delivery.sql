-- Delivery (clause 2.7) for one district per transaction (the spec does all
-- ten in one): oldest undelivered order, its carrier, lines and customer.
\set w random(1, :W)
\set d random(1, 10)
\set carrier random(1, 10)
BEGIN;
SELECT min(no_o_id) AS o_id FROM new_order WHERE tenant_id = :w AND no_d_id = :d \gset
DELETE FROM new_order WHERE tenant_id = :w AND no_d_id = :d AND no_o_id = :o_id;
UPDATE orders SET o_carrier_id = :carrier WHERE tenant_id = :w AND o_d_id = :d AND o_id = :o_id RETURNING o_c_id AS c \gset
UPDATE order_line SET ol_delivery_d = now() WHERE tenant_id = :w AND ol_d_id = :d AND ol_o_id = :o_id;
UPDATE customer SET c_balance = c_balance + (SELECT coalesce(sum(ol_amount), 0) FROM order_line WHERE tenant_id = :w AND ol_d_id = :d AND ol_o_id = :o_id), c_delivery_cnt = c_delivery_cnt + 1 WHERE tenant_id = :w AND c_d_id = :d AND c_id = :c;
END;
