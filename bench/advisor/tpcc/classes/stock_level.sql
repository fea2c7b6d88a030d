-- Stock-Level (clause 2.8): distinct items of the district's last 20
-- orders whose stock is below the threshold.
\set w random(1, :W)
\set d random(1, 10)
\set threshold random(10, 20)
SELECT d_next_o_id AS next_o_id FROM district WHERE tenant_id = :w AND d_id = :d \gset
SELECT count(DISTINCT s.s_i_id) FROM order_line ol JOIN stock s ON s.tenant_id = ol.tenant_id AND s.s_i_id = ol.ol_i_id WHERE ol.tenant_id = :w AND ol.ol_d_id = :d AND ol.ol_o_id >= :next_o_id - 20 AND ol.ol_o_id < :next_o_id AND s.s_quantity < :threshold;
