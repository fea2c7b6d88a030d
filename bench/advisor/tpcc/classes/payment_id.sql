-- Payment (clause 2.5), customer selected by id; home warehouse only.
\set w random(1, :W)
\set d random(1, 10)
\set c ((random(0, 1023) | random(1, 3000)) + 259) % 3000 + 1
\set amount random(100, 500000)
BEGIN;
UPDATE warehouse SET w_ytd = w_ytd + :amount * 0.01 WHERE tenant_id = :w;
UPDATE district SET d_ytd = d_ytd + :amount * 0.01 WHERE tenant_id = :w AND d_id = :d;
UPDATE customer SET c_balance = c_balance - :amount * 0.01, c_ytd_payment = c_ytd_payment + :amount * 0.01, c_payment_cnt = c_payment_cnt + 1 WHERE tenant_id = :w AND c_d_id = :d AND c_id = :c RETURNING c_first, c_last, c_credit, c_balance;
INSERT INTO history (h_c_id, h_c_d_id, h_c_w_id, h_d_id, tenant_id, h_date, h_amount, h_data) VALUES (:c, :d, :w, :d, :w, now(), :amount * 0.01, 'payment by id');
END;
