-- Nexmark q17 (auction statistics report), per auction per day.
-- Flink's q17 groups by auction and DATE_FORMAT(dateTime, 'yyyy-MM-dd')
-- without a window (an updating aggregate with retractions, which Weir does
-- not do). This version uses a 1-day tumbling event-time window.
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
  auction    BIGINT,
  `day`    STRING,
  total_bids BIGINT,
  rank1_bids BIGINT,
  rank2_bids BIGINT,
  rank3_bids BIGINT,
  min_price  BIGINT,
  max_price  BIGINT,
  avg_price  BIGINT,
  sum_price  BIGINT
) WITH ('connector' = 'print');

INSERT INTO print_sink
SELECT
  auction,
  DATE_FORMAT(window_start, 'yyyy-MM-dd') AS `day`,
  count(*) AS total_bids,
  count(*) FILTER (WHERE price < 10000) AS rank1_bids,
  count(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
  count(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
  min(price) AS min_price,
  max(price) AS max_price,
  avg(price) AS avg_price,
  sum(price) AS sum_price
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '1' DAY))
GROUP BY auction, window_start, window_end;
