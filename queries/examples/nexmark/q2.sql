-- Nexmark q2: selection. Bids on every 123rd auction.
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
  auction BIGINT,
  price   BIGINT
) WITH ('connector' = 'print');

INSERT INTO print_sink
SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
