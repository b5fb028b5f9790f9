-- Fraud rule "small then large" as a MATCH_RECOGNIZE (Flink SQL, runs unchanged
-- on Flink with its own source): an account makes a test payment below 1.00 and
-- its very next transaction is above 500, less than a minute later.
--
--   cargo run -- run queries/examples/fraud/small_then_large_match.sql
--
-- Rows may arrive up to 5 s out of order: the matcher waits for the watermark
-- and matches each account's transactions in event-time order.

SET 'parallelism.default' = '2';

CREATE TABLE transactions (
  account_id BIGINT,
  card_id BIGINT,
  amount DOUBLE,
  event_time TIMESTAMP(3),
  fraud_label STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH (
  'connector' = 'transactions',
  'events.num' = '200000',
  'out-of-order.rate' = '0.05'
);

CREATE TABLE alerts (
  account_id BIGINT,
  small_card BIGINT,
  small_amount DOUBLE,
  large_card BIGINT,
  large_amount DOUBLE,
  small_time TIMESTAMP(3),
  large_time TIMESTAMP(3),
  label STRING
) WITH ('connector' = 'print');

INSERT INTO alerts
SELECT account_id, small_card, small_amount, large_card, large_amount,
       small_time, large_time, label
FROM transactions
  MATCH_RECOGNIZE (
    PARTITION BY account_id
    ORDER BY event_time
    MEASURES
      S.card_id AS small_card,
      S.amount AS small_amount,
      L.card_id AS large_card,
      L.amount AS large_amount,
      S.event_time AS small_time,
      L.event_time AS large_time,
      L.fraud_label AS label
    AFTER MATCH SKIP PAST LAST ROW
    PATTERN (S L) WITHIN INTERVAL '1' MINUTE
    DEFINE
      S AS S.amount < 1.00,
      L AS L.amount > 500
  ) AS m;
