-- Per-account ordering of card transactions by their sequence number
-- (Weir's SEQUENCE_ORDER / SEQUENCE_GAPS; Flink has no such operator).
--
-- The generator emits 5 % of the rows up to 5 s late and 1 % twice. Each
-- account's `seq` is dense from 1, so with FIRST_SEQUENCE = 1 every key
-- expects 1 first. SEQUENCE_ORDER releases each account's rows in sequence
-- order, dropping the repeats (the operator counts them in its
-- `duplicate_rows` metric; in the run summary SEQUENCE_ORDER takes in
-- 202025 rows and lets out exactly the 200000 distinct ones);
-- SEQUENCE_GAPS reports the holes it gave up on: none here, since every
-- late row arrives within the watermark's 5 s (a hole is given up when the
-- watermark passes the first row after it plus MAX_DELAY, or when an
-- account holds more than MAX_BUFFER rows).
--
-- Ordered rows and gap markers are two operator instances over the same
-- table, so the job reads it in two statements.
--
--   cargo run -- run queries/examples/fraud/sequence_order.sql
CREATE TABLE tx (
  tx_id      BIGINT,
  account_id BIGINT,
  amount     DOUBLE,
  seq        BIGINT,
  event_time TIMESTAMP(3),
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH (
  'connector' = 'transactions',
  'events.num' = '200000',
  'accounts' = '1000',
  'fraud.rate' = '0',
  'out-of-order.rate' = '0.05',
  'out-of-order.max-delay' = '5 s',
  'duplicate.rate' = '0.01'
);

CREATE TABLE ordered (
  account_id BIGINT,
  seq        BIGINT,
  tx_id      BIGINT,
  amount     DOUBLE,
  event_time TIMESTAMP(3)
) WITH ('connector' = 'print', 'print-identifier' = 'ordered');

CREATE TABLE gaps (
  account_id    BIGINT,
  first_missing BIGINT,
  last_missing  BIGINT,
  detected_at   TIMESTAMP(3)
) WITH ('connector' = 'print', 'print-identifier' = 'gap');

-- Account 7's transactions, in sequence order (1, 2, 3, ... without repeats).
INSERT INTO ordered
SELECT account_id, seq, tx_id, amount, event_time
FROM TABLE(SEQUENCE_ORDER(TABLE tx, DESCRIPTOR(account_id), DESCRIPTOR(seq),
                          INTERVAL '5' SECOND, 10000, 1))
WHERE account_id = 7;

INSERT INTO gaps
SELECT account_id, first_missing, last_missing, detected_at
FROM TABLE(SEQUENCE_GAPS(TABLE tx, DESCRIPTOR(account_id), DESCRIPTOR(seq),
                         INTERVAL '5' SECOND, 10000, 1));
