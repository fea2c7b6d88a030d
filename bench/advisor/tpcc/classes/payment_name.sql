-- Payment (clause 2.5), customer selected by last name: the rows of that
-- name ordered by c_first (simplified: the first one, not the middle one).
\set w random(1, :W)
\set d random(1, 10)
\set n ((random(0, 255) | random(0, 999)) + 157) % 1000
\set n1 :n / 100 + 1
\set n2 (:n / 10) % 10 + 1
\set n3 :n % 10 + 1
\set amount random(100, 500000)
-- the spec's last name from three syllables (clause 4.3.2.3), as a string parameter
SELECT (array['BAR','OUGHT','ABLE','PRI','PRES','ESE','ANTI','CALLY','ATION','EING'])[:n1] || (array['BAR','OUGHT','ABLE','PRI','PRES','ESE','ANTI','CALLY','ATION','EING'])[:n2] || (array['BAR','OUGHT','ABLE','PRI','PRES','ESE','ANTI','CALLY','ATION','EING'])[:n3] AS c_last \gset
BEGIN;
UPDATE warehouse SET w_ytd = w_ytd + :amount * 0.01 WHERE tenant_id = :w;
UPDATE district SET d_ytd = d_ytd + :amount * 0.01 WHERE tenant_id = :w AND d_id = :d;
SELECT c_id AS c, c_first, c_balance FROM customer WHERE tenant_id = :w AND c_d_id = :d AND c_last = :c_last ORDER BY c_first LIMIT 1 \gset
UPDATE customer SET c_balance = c_balance - :amount * 0.01, c_ytd_payment = c_ytd_payment + :amount * 0.01, c_payment_cnt = c_payment_cnt + 1 WHERE tenant_id = :w AND c_d_id = :d AND c_id = :c;
INSERT INTO history (h_c_id, h_c_d_id, h_c_w_id, h_d_id, tenant_id, h_date, h_amount, h_data) VALUES (:c, :d, :w, :d, :w, now(), :amount * 0.01, 'payment by name');
END;
