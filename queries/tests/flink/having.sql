-- TUMBLE(10 s) with HAVING.
-- bids.json, in arrival order (auction, bidder, price, second) and the
-- watermark (max dateTime - 2 s) after each row:
--   (1,100,10,1) wm -1 | (2,101,20,3) wm 1 | (1,100,30,9.999) wm 7.999
--   (1,102,40,10) wm 8 | (2,101,50,8: out of order) wm 8 | (1,100,60,15) wm 13
--   (3,102,70,14) wm 13 | (2,103,80,25) wm 23 | (2,101,90,21) wm 23
--   (1,100,5,31) wm 29 | (3,103,55,33.5) wm 31.5 | (1,102,65,29: after wm 31.5) wm 31.5
-- End of input: the watermark jumps to the maximum and fires every open window.

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

SELECT auction, window_start, window_end, COUNT(*) AS c, SUM(price) AS s
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end
HAVING COUNT(*) > 1;

-- HAVING on an aggregate that is not selected.
SELECT auction, window_start, window_end, COUNT(*) AS c
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end
HAVING MAX(price) >= 60;
