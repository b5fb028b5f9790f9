-- Nexmark q1 (currency conversion) from a Kafka topic: measures reading and
-- decoding JSON from Kafka. Ends when it has read what the topic held at
-- the start.
--
-- Input: weir produce nexmark --topic bids --brokers 127.0.0.1:9092 --events 1000000 --partitions 4
-- Run:   weir run queries/examples/kafka/q1.sql
CREATE TABLE bids (
  auction  BIGINT,
  bidder   BIGINT,
  price    BIGINT,
  channel  STRING,
  url      STRING,
  dateTime TIMESTAMP(3),
  extra    STRING,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'bids',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'json'
);

CREATE TABLE discard_sink (
  auction  BIGINT,
  bidder   BIGINT,
  price    DOUBLE,
  dateTime TIMESTAMP(3),
  extra    STRING
) WITH ('connector' = 'blackhole');

INSERT INTO discard_sink
SELECT auction, bidder, 0.908 * price AS price, dateTime, extra FROM bids;
