-- TUMBLE(10 s) window aggregation per auction.
-- bids.json, in arrival order (auction, bidder, price, second) and the
-- watermark (max dateTime - 2 s) after each row:
--   (1,100,10,1) wm -1 | (2,101,20,3) wm 1 | (1,100,30,9.999) wm 7.999
--   (1,102,40,10) wm 8 | (2,101,50,8: out of order) wm 8 | (1,100,60,15) wm 13
--   (3,102,70,14) wm 13 | (2,103,80,25) wm 23 | (2,101,90,21) wm 23
--   (1,100,5,31) wm 29 | (3,103,55,33.5) wm 31.5 | (1,102,65,29: after wm 31.5) wm 31.5
-- End of input: the watermark jumps to the maximum and fires every open window.
-- Half-open bounds: 09.999 is in [0,10), 10.000 in [10,20). The row at 8 is
-- out of order but [0,10) has not fired (watermark 8). The row at 29 comes
-- after [20,30) fired (watermark 31.5): late, dropped.

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

-- Every aggregate; AVG of a BIGINT is a BIGINT in Flink (integer division).
SELECT auction, window_start, window_end, COUNT(*) AS c, SUM(price) AS s,
  MIN(price) AS lo, MAX(price) AS hi, AVG(price) AS av,
  COUNT(DISTINCT bidder) AS bidders
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, auction;

-- AVG of a DOUBLE, SUM of a DOUBLE, and window columns after the aggregates.
SELECT auction, AVG(CAST(price AS DOUBLE)) AS av, SUM(CAST(price AS DOUBLE) / 4) AS q,
  window_start, window_end
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;

-- A filter before the window, grouped by a string key.
SELECT channel, window_start, window_end, COUNT(*) AS c, MAX(price) AS hi
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
WHERE price >= 20
GROUP BY channel, window_start, window_end;

-- flink_late.json, in arrival order (auction, price, second) and the
-- watermark (max - 2 s) after each row:
--   (1,10,1) wm -1 | (1,20,6) wm 4 | (1,30,11) wm 9
--   (1,40,4) wm 9: older than the watermark, but [0,10) has not fired
--   (1,50,17) wm 15 fires [0,10)
--   (1,60,3) wm 15: [0,10) has fired: late
--   (1,70,12) wm 15 and (2,5,10) wm 15: older than the watermark, [10,20) open
--   (1,80,25) wm 23 fires [10,20)
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

SELECT auction, window_start, window_end, COUNT(*) AS c, SUM(price) AS s
FROM TABLE(TUMBLE(TABLE late_rows, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
