-- SESSION (gap 5 s) window aggregation, PARTITION BY auction.

-- flink_session.json, in arrival order (auction, price, second), watermark
-- (max - 5 s) after each row:
--   (1,10,1) wm -4 | (1,20,3) wm -2: auction 1 has [1,8)
--   (2,30,2) wm -2: auction 2 has [2,7)
--   (1,40,12) wm 7 fires auction 2's [2,7); auction 1 has [1,8) and [12,17)
--   (1,50,7.5) wm 7: not late, bridges auction 1's sessions into [1,17)
--   (2,60,20) wm 15 | (2,70,24) wm 19 fires [1,17); auction 2 has [20,29)
--   (3,5,31) wm 26
--   (2,80,16) wm 26: on its own [16,21) ends before the watermark, but it
--     touches the open session [20,29) of auction 2
--   (1,90,9) wm 26: [9,14) ends before the watermark, no open session of
--     auction 1 to join: late
--   (1,15,30) wm 26 | (3,25,34) wm 29
-- End of input fires the rest.
CREATE TABLE sess (
  auction BIGINT,
  price BIGINT,
  `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '5' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = 'tests/data/flink_session.json',
  'format' = 'json'
);

CREATE TABLE bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  channel STRING,
  `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '2' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = 'tests/data/bids.json',
  'format' = 'json'
);

SELECT auction, window_start, window_end, COUNT(*) AS c, SUM(price) AS s,
  MIN(price) AS lo, MAX(price) AS hi
FROM TABLE(SESSION(TABLE sess PARTITION BY auction, DESCRIPTOR(`dateTime`), INTERVAL '5' SECOND))
GROUP BY auction, window_start, window_end;

-- bids.json (watermark max - 2 s), sessions per auction.
SELECT auction, window_start, window_end, COUNT(*) AS c, SUM(price) AS s,
  AVG(price) AS av, COUNT(DISTINCT bidder) AS bidders
FROM TABLE(SESSION(TABLE bid PARTITION BY auction, DESCRIPTOR(`dateTime`), INTERVAL '5' SECOND))
GROUP BY auction, window_start, window_end;

-- Sessions over all rows (no PARTITION BY).
SELECT window_start, window_end, COUNT(*) AS c, SUM(price) AS s
FROM TABLE(SESSION(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '5' SECOND))
GROUP BY window_start, window_end;
