-- HOP (slide 5 s, size 10 s) window aggregation: each row is in two windows.
-- bids.json, in arrival order (auction, bidder, price, second) and the
-- watermark (max dateTime - 2 s) after each row:
--   (1,100,10,1) wm -1 | (2,101,20,3) wm 1 | (1,100,30,9.999) wm 7.999
--   (1,102,40,10) wm 8 | (2,101,50,8: out of order) wm 8 | (1,100,60,15) wm 13
--   (3,102,70,14) wm 13 | (2,103,80,25) wm 23 | (2,101,90,21) wm 23
--   (1,100,5,31) wm 29 | (3,103,55,33.5) wm 31.5 | (1,102,65,29: after wm 31.5) wm 31.5
-- End of input: the watermark jumps to the maximum and fires every open window.
-- The row at 29 arrives at watermark 31.5: its window [20,30) has fired but
-- [25,35) has not.

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

CREATE TABLE late_rows (
  auction BIGINT,
  price BIGINT,
  `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '2' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = 'tests/data/flink_late.json',
  'format' = 'json'
);

SELECT auction, window_start, window_end, COUNT(*) AS c, SUM(price) AS s,
  MIN(price) AS lo, MAX(price) AS hi, AVG(price) AS av,
  COUNT(DISTINCT bidder) AS bidders
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '5' SECOND, INTERVAL '10' SECOND))
GROUP BY window_start, window_end, auction;

-- flink_late.json, in arrival order (auction, price, second), watermark
-- (max - 2 s) after each row, and the windows of the row ([-5,5) starts at
-- 2025-12-31 23:59:55):
--   (1,10,1) wm -1: [-5,5) [0,10)
--   (1,20,6) wm 4: [0,10) [5,15)
--   (1,30,11) wm 9 fires [-5,5): [5,15) [10,20)
--   (1,40,4) wm 9: [-5,5) has fired, [0,10) has not
--   (1,50,17) wm 15 fires [0,10) and [5,15): [10,20) [15,25)
--   (1,60,3) wm 15: [-5,5) and [0,10) have both fired
--   (1,70,12) wm 15: [5,15) has fired, [10,20) has not
--   (2,5,10) wm 15: [5,15) has fired, [10,20) has not (10.000 is not in [0,10))
--   (1,80,25) wm 23 fires [10,20): [20,30) [25,35)
-- End of input fires [15,25), [20,30) and [25,35).
SELECT auction, window_start, window_end, COUNT(*) AS c, SUM(price) AS s
FROM TABLE(HOP(TABLE late_rows, DESCRIPTOR(`dateTime`), INTERVAL '5' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
