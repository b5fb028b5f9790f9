-- Bids per auction in 10-second windows sliding by 2 seconds, read from a
-- Kafka topic and written to another one (key: the auction id).
--
-- Input:  weir produce nexmark --topic bids --brokers 127.0.0.1:9092 --events 1000000 --partitions 4
-- Run:    weir run queries/examples/kafka/hop_window.sql --parallelism 2
-- Output: topic bid-stats, one JSON object per window and auction.
--
-- Each partition is a split with its own watermark; the source forwards the
-- minimum, and a partition without data for 5 s stops holding it back.
-- The job reads what the topic holds when it starts and ends; remove
-- 'scan.bounded.mode' to keep reading new bids.
CREATE TABLE bids (
  auction  BIGINT,
  bidder   BIGINT,
  price    BIGINT,
  channel  STRING,
  url      STRING,
  dateTime TIMESTAMP(3),
  extra    STRING,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'bids',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'weir-hop-window',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'scan.watermark.idle-timeout' = '5 s',
  'format' = 'json'
);

CREATE TABLE bid_stats (
  auction      BIGINT,
  window_start TIMESTAMP(3),
  window_end   TIMESTAMP(3),
  num          BIGINT,
  max_price    BIGINT
) WITH (
  'connector' = 'kafka',
  'topic' = 'bid-stats',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'format' = 'json',
  'key.format' = 'json',
  'key.fields' = 'auction'
);

INSERT INTO bid_stats
SELECT auction, window_start, window_end, COUNT(*) AS num, MAX(price) AS max_price
FROM TABLE(HOP(TABLE bids, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
