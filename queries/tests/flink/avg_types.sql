-- AVG has its argument's type in Flink: of an integer column an integer
-- (sum / count truncated toward zero: -7 and 0 average to -3, not -4), of a
-- FLOAT a FLOAT, of a DOUBLE a DOUBLE. NULLs are skipped; an all-NULL group
-- averages to NULL. HAVING and an aggregation without a key see the integer.
-- flink_nulls.json (auction, bidder, price, second): (7,200,12,1)
-- (7,NULL,NULL,2) (8,201,-7,3.25) (8,202,0,4.5); all in [0,10).

CREATE TABLE nul (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  channel STRING,
  `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '2' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = 'tests/data/flink_nulls.json',
  'format' = 'json'
);

SELECT auction, window_start, window_end, AVG(price) AS av,
  AVG(CAST(bidder AS FLOAT)) AS av_float,
  AVG(price) FILTER (WHERE price IS NULL) AS av_none
FROM TABLE(TUMBLE(TABLE nul, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;

-- (DataFusion names AVG(CAST(price AS INT)) and AVG(CAST(price AS DOUBLE))
-- alike, so Weir cannot plan both in one aggregation: one cast per column.)
SELECT auction, window_start, window_end, AVG(CAST(price AS INT)) AS av_int,
  AVG(CAST(bidder AS DOUBLE)) AS av_double
FROM TABLE(TUMBLE(TABLE nul, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;

SELECT auction, window_start, window_end, AVG(CAST(price AS SMALLINT)) AS av_small
FROM TABLE(TUMBLE(TABLE nul, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;

-- -3 > -4 holds for the integer average; -3.5 > -3.5 would not.
SELECT auction, window_start, window_end, AVG(price) AS av
FROM TABLE(TUMBLE(TABLE nul, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end
HAVING AVG(price) > -3.5;

-- Without a key: (12 - 7 + 0) / 3 = 1.
SELECT window_start, window_end, AVG(price) AS av, AVG(CAST(bidder AS DOUBLE)) AS av_double
FROM TABLE(TUMBLE(TABLE nul, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY window_start, window_end;
