-- A custom rule written in Rust (examples/custom_rule/src/lib.rs), called
-- from SQL: cards making several whole-amount purchases within an hour.
--   cargo run -p weir-example-custom-rule -- examples/custom_rule/rule.sql
CREATE TABLE tx (
  tx_id BIGINT, card_id BIGINT, amount DOUBLE, event_time TIMESTAMP(3),
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH (
  'connector' = 'transactions',
  'events.num' = '500000',
  'accounts' = '1000',
  'event-interval' = '100 ms',
  'out-of-order.rate' = '0.05',
  'fraud.rate' = '0'
);

-- is_round(amount, unit) is the custom scalar UDF: keep whole-dollar amounts.
CREATE VIEW round_tx AS SELECT * FROM tx WHERE is_round(amount, 1.0);

-- ROUND_BURST is the custom operator: alert when a card's 3rd round amount
-- falls within one hour of its 1st.
SELECT card_id, round_count, burst_start, event_time, tx_id
FROM TABLE(ROUND_BURST(TABLE round_tx, DESCRIPTOR(card_id), DESCRIPTOR(event_time),
                       DESCRIPTOR(tx_id), 3, INTERVAL '1' HOUR));
