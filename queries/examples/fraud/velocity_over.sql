-- Card velocity with an OVER window (Flink SQL, runs unchanged on Flink):
-- for every transaction, the number and total of the card's transactions
-- in the minute up to it, keeping those with more than 5 (the velocity rule
-- of the fraud workload). The generator's duplicates are removed first with
-- Flink's keep-first deduplication (ROW_NUMBER() ... = 1 on tx_id).
-- Every row printed (384 of them) is labelled `velocity` by the generator:
-- the rule finds the injected cases and no clean transaction.
--
--   cargo run -- run queries/examples/fraud/velocity_over.sql
CREATE TABLE tx (
  tx_id       BIGINT,
  card_id     BIGINT,
  amount      DOUBLE,
  event_time  TIMESTAMP(3),
  fraud_label STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH (
  'connector' = 'transactions',
  'events.num' = '400000',
  'fraud.velocity.rate' = '0.0002',
  'out-of-order.rate' = '0.05',
  'duplicate.rate' = '0.01'
);

CREATE TABLE velocity (
  card_id     BIGINT,
  event_time  TIMESTAMP(3),
  tx_per_min  BIGINT,
  total       DOUBLE,
  fraud_label STRING
) WITH ('connector' = 'print', 'print-identifier' = 'velocity');

CREATE VIEW unique_tx AS
SELECT tx_id, card_id, amount, event_time, fraud_label
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY tx_id ORDER BY event_time ASC) AS rn
  FROM tx)
WHERE rn = 1;

INSERT INTO velocity
SELECT card_id, event_time, tx_per_min, total, fraud_label
FROM (
  SELECT card_id, event_time, fraud_label,
    COUNT(*) OVER w AS tx_per_min,
    SUM(amount) OVER w AS total
  FROM unique_tx
  WINDOW w AS (PARTITION BY card_id ORDER BY event_time
               RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW))
WHERE tx_per_min > 5;
