-- Nexmark q5 (hot items), windowed part: the number of bids per auction in
-- 10-second windows sliding every 2 seconds.
-- Flink's full q5 then joins these counts with the maximum count per window
-- to keep only the hottest auctions; that needs a join, which Weir does not
-- support yet (the joins issue). This file runs the aggregation half.
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
  auction   BIGINT,
  num       BIGINT,
  starttime TIMESTAMP(3),
  endtime   TIMESTAMP(3)
) WITH ('connector' = 'print');

INSERT INTO print_sink
SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
