-- Nexmark q15 (bidding statistics report), per day.
-- Flink's q15 groups by DATE_FORMAT(dateTime, 'yyyy-MM-dd') without a window:
-- a continuously updating aggregate that emits retractions, which Weir does not
-- do (final results only). This version computes the same statistics per
-- 1-day tumbling event-time window, emitted once when the day is complete.
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
  `day`         STRING,
  total_bids      BIGINT,
  rank1_bids      BIGINT,
  rank2_bids      BIGINT,
  rank3_bids      BIGINT,
  total_bidders   BIGINT,
  rank1_bidders   BIGINT,
  rank2_bidders   BIGINT,
  rank3_bidders   BIGINT,
  total_auctions  BIGINT,
  rank1_auctions  BIGINT,
  rank2_auctions  BIGINT,
  rank3_auctions  BIGINT
) WITH ('connector' = 'print');

INSERT INTO print_sink
SELECT
  DATE_FORMAT(window_start, 'yyyy-MM-dd') AS `day`,
  count(*) AS total_bids,
  count(*) FILTER (WHERE price < 10000) AS rank1_bids,
  count(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
  count(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
  count(DISTINCT bidder) AS total_bidders,
  count(DISTINCT bidder) FILTER (WHERE price < 10000) AS rank1_bidders,
  count(DISTINCT bidder) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bidders,
  count(DISTINCT bidder) FILTER (WHERE price >= 1000000) AS rank3_bidders,
  count(DISTINCT auction) AS total_auctions,
  count(DISTINCT auction) FILTER (WHERE price < 10000) AS rank1_auctions,
  count(DISTINCT auction) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_auctions,
  count(DISTINCT auction) FILTER (WHERE price >= 1000000) AS rank3_auctions
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '1' DAY))
GROUP BY window_start, window_end;
