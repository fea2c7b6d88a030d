-- New-Order (clause 2.4), 10 lines (the spec's mean), all from the home
-- warehouse; the per-line item/stock reads and writes are set-based.
\set w random(1, :W)
\set d random(1, 10)
\set c ((random(0, 1023) | random(1, 3000)) + 259) % 3000 + 1
\set i1 ((random(0, 8191) | random(1, 100000)) + 7911) % 100000 + 1
\set i2 ((random(0, 8191) | random(1, 100000)) + 7911) % 100000 + 1
\set i3 ((random(0, 8191) | random(1, 100000)) + 7911) % 100000 + 1
\set i4 ((random(0, 8191) | random(1, 100000)) + 7911) % 100000 + 1
\set i5 ((random(0, 8191) | random(1, 100000)) + 7911) % 100000 + 1
\set i6 ((random(0, 8191) | random(1, 100000)) + 7911) % 100000 + 1
\set i7 ((random(0, 8191) | random(1, 100000)) + 7911) % 100000 + 1
\set i8 ((random(0, 8191) | random(1, 100000)) + 7911) % 100000 + 1
\set i9 ((random(0, 8191) | random(1, 100000)) + 7911) % 100000 + 1
\set i10 ((random(0, 8191) | random(1, 100000)) + 7911) % 100000 + 1
BEGIN;
SELECT w_tax FROM warehouse WHERE tenant_id = :w;
SELECT c_discount, c_last, c_credit FROM customer WHERE tenant_id = :w AND c_d_id = :d AND c_id = :c;
UPDATE district SET d_next_o_id = d_next_o_id + 1 WHERE tenant_id = :w AND d_id = :d RETURNING d_next_o_id - 1 AS o_id, d_tax \gset
INSERT INTO orders (tenant_id, o_d_id, o_id, o_c_id, o_entry_d, o_carrier_id, o_ol_cnt, o_all_local) VALUES (:w, :d, :o_id, :c, now(), NULL, 10, 1);
INSERT INTO new_order (tenant_id, no_d_id, no_o_id) VALUES (:w, :d, :o_id);
SELECT i_id, i_price, i_name, i_data FROM item WHERE i_id IN (:i1, :i2, :i3, :i4, :i5, :i6, :i7, :i8, :i9, :i10);
UPDATE stock SET s_quantity = CASE WHEN s_quantity >= 15 THEN s_quantity - 5 ELSE s_quantity + 86 END, s_ytd = s_ytd + 5, s_order_cnt = s_order_cnt + 1 WHERE tenant_id = :w AND s_i_id IN (:i1, :i2, :i3, :i4, :i5, :i6, :i7, :i8, :i9, :i10);
INSERT INTO order_line (tenant_id, ol_d_id, ol_o_id, ol_number, ol_i_id, ol_supply_w_id, ol_delivery_d, ol_quantity, ol_amount, ol_dist_info) SELECT s.tenant_id, :d, :o_id, row_number() OVER (ORDER BY i.i_id), i.i_id, s.tenant_id, NULL, 5, i.i_price * 5, s.s_dist_01 FROM item i JOIN stock s ON s.s_i_id = i.i_id WHERE s.tenant_id = :w AND i.i_id IN (:i1, :i2, :i3, :i4, :i5, :i6, :i7, :i8, :i9, :i10);
END;
