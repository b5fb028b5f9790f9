-- Nexmark q7 (highest bid), windowed part: the highest price per 10-second
-- tumbling window.
-- Flink's full q7 joins the bids with this maximum to output the winning
-- bid rows; that needs a join, which Weir does not support yet (the joins
-- issue). This file runs the aggregation half.
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
  window_start TIMESTAMP(3),
  window_end   TIMESTAMP(3),
  maxprice     BIGINT
) WITH ('connector' = 'print');

INSERT INTO print_sink
SELECT window_start, window_end, max(price) AS maxprice
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
GROUP BY window_start, window_end;
