-- Nexmark q1: currency conversion (dollars to euros).
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

CREATE TABLE discard_sink (
  auction  BIGINT,
  bidder   BIGINT,
  price    DOUBLE,
  dateTime TIMESTAMP(3),
  extra    STRING
) WITH ('connector' = 'blackhole');

INSERT INTO discard_sink
SELECT auction, bidder, 0.908 * price AS price, dateTime, extra FROM bid;
