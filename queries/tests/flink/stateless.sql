-- Stateless queries: filters, projections, scalar functions, a computed column.

CREATE TABLE bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  channel STRING,
  `dateTime` TIMESTAMP(3),
  price_eur AS price * 0.9,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '2' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = 'tests/data/bids.json',
  'format' = 'json'
);

-- flink_nulls.json: NULLs (explicit and missing fields), a negative and a zero price.
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

SELECT * FROM bid;

SELECT auction, price, price_eur, CAST(price AS DOUBLE) * 0.908 AS usd
FROM bid
WHERE price > 20 AND channel = 'web';

SELECT auction, bidder, price * 2 + 1 AS a, price - bidder AS b, price / 7 AS c,
  MOD(price, 7) AS m, -price AS n
FROM bid
WHERE auction <> 3 OR price < 60;

SELECT auction, price,
  CASE WHEN price > 50 THEN 'high' WHEN price > 20 THEN 'mid' ELSE 'low' END AS band,
  CASE channel WHEN 'web' THEN 1 ELSE 0 END AS is_web
FROM bid;

SELECT UPPER(channel) AS u, LOWER('MiXeD') AS l, SUBSTRING(channel, 1, 2) AS s2,
  SUBSTRING(channel FROM 2) AS s3, CHAR_LENGTH(channel) AS n,
  DATE_FORMAT(`dateTime`, 'yyyy-MM-dd HH:mm') AS minute_str, `dateTime`
FROM bid
WHERE bidder IN (100, 103);

SELECT auction, price, price + 1 AS p1, price * 0.5 AS half, CAST(price AS DOUBLE) / 4 AS q,
  channel, UPPER(channel) AS u, CHAR_LENGTH(channel) AS n,
  CASE WHEN price > 5 THEN 'big' ELSE 'small' END AS band,
  COALESCE(channel, 'none') AS ch, price IS NULL AS no_price
FROM nul;

SELECT auction, price FROM nul WHERE price > 0 OR channel IS NULL;
