-- Amount spike: an amount more than 4 standard deviations above the card's
-- mean, once the card has 10 earlier amounts.
-- cargo run -- run queries/examples/fraud/amount_spike.sql
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

SELECT card_id, amount, ROUND(mean, 2) AS mean, ROUND(z_score, 1) AS z, history,
       event_time, tx_id, fraud_label
FROM TABLE(AMOUNT_SPIKE(TABLE tx, DESCRIPTOR(card_id), DESCRIPTOR(event_time),
                        DESCRIPTOR(amount), 4.0, 10,
                        DESCRIPTOR(tx_id, fraud_label)));
