-- A live stream: bids per channel in 5-second tumbling windows, printed as
-- they close, with the highest Kafka offset among them (a metadata column).
--
-- Input (keeps producing, event times follow the wall clock):
--   weir produce nexmark --topic live-bids --brokers 127.0.0.1:9092 --events 100000000 --partitions 4 --rate 20000
-- Run (Ctrl-C to stop): weir run queries/examples/kafka/live_print.sql
CREATE TABLE bids (
  auction   BIGINT,
  bidder    BIGINT,
  price     BIGINT,
  channel   STRING,
  url       STRING,
  dateTime  TIMESTAMP(3),
  extra     STRING,
  `offset`  BIGINT METADATA VIRTUAL,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '1' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'live-bids',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'scan.startup.mode' = 'latest-offset',
  'scan.watermark.idle-timeout' = '2 s',
  'format' = 'json'
);

CREATE TABLE print_sink (
  channel      STRING,
  window_start TIMESTAMP(3),
  bids         BIGINT,
  max_price    BIGINT,
  last_offset  BIGINT
) WITH ('connector' = 'print');

INSERT INTO print_sink
SELECT channel, window_start, COUNT(*) AS bids, MAX(price) AS max_price, MAX(`offset`) AS last_offset
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(dateTime), INTERVAL '5' SECOND))
GROUP BY channel, window_start, window_end;
