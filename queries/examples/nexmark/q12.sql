-- Nexmark q12 with event time: bids per bidder in 10-second tumbling windows.
-- (Flink's q12 uses processing time; this variant uses the event time
-- dateTime, so its results are reproducible.)
CREATE TABLE bid (
  auction  BIGINT,
  bidder   BIGINT,
  price    BIGINT,
  channel  STRING,
  url      STRING,
  dateTime TIMESTAMP(3),
  extra    STRING,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH (
  'connector' = 'nexmark',
  'nexmark.table' = 'bid',
  'events.num' = '1000000'
);

CREATE TABLE print_sink (
  bidder       BIGINT,
  bid_count    BIGINT,
  window_start TIMESTAMP(3),
  window_end   TIMESTAMP(3)
) WITH ('connector' = 'print');

INSERT INTO print_sink
SELECT bidder, count(*) AS bid_count, window_start, window_end
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
GROUP BY bidder, window_start, window_end;
