-- Small then large (Flink's fraud-detection tutorial): an amount below 1.00
-- immediately followed by one above 500.00 on the same account within a minute.
-- cargo run -- run queries/examples/fraud/small_then_large.sql
CREATE TABLE tx (
  tx_id        BIGINT,
  account_id   BIGINT,
  card_id      BIGINT,
  device_id    BIGINT,
  merchant_id  BIGINT,
  amount       DOUBLE,
  merchant_lat DOUBLE,
  merchant_lon DOUBLE,
  seq          BIGINT,
  event_time   TIMESTAMP(3),
  fraud_label  STRING,   -- ground truth: which injected case a row belongs to (NULL: clean)
  fraud_case   BIGINT,
  -- The generator delays rows by at most 'out-of-order.max-delay' (5 s):
  -- a watermark 5 s behind makes no row late.
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH (
  'connector' = 'transactions',
  'events.num' = '200000',
  'accounts' = '1000',
  'event-interval' = '100 ms',
  'out-of-order.rate' = '0.05',
  'duplicate.rate' = '0.01',
  'fraud.rate' = '0.001'
);

SELECT account_id, small_amount, amount, small_event_time, event_time, tx_id, fraud_label
FROM TABLE(SMALL_THEN_LARGE(TABLE tx, DESCRIPTOR(account_id), DESCRIPTOR(event_time),
                            DESCRIPTOR(amount), 1.00, 500.00, INTERVAL '1' MINUTE,
                            DESCRIPTOR(tx_id, fraud_label)));
