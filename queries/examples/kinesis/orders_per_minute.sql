-- Orders from a Kinesis stream, counted and summed per customer in
-- one-minute tumbling windows, written back to another Kinesis stream.
--
-- Against the kinesalite emulator (see README.md beside this file):
--   eval "$(bash .ci/kinesis.sh start)"
--   cargo run --release -p weir-connectors --example kinesis_demo -- setup
--   sed "s#http://127.0.0.1:4567#$WEIR_KINESALITE_ENDPOINT#" \
--     queries/examples/kinesis/orders_per_minute.sql > /tmp/orders.sql
--   cargo run --release -- run /tmp/orders.sql
-- Against AWS: drop 'aws.endpoint' and the BASIC credentials (the default
-- credential chain is used) and name your region.
SET 'table.exec.source.idle-timeout' = '5 s';

CREATE TABLE orders (
  order_id  BIGINT,
  customer  STRING,
  amount    DOUBLE,
  ts        TIMESTAMP(3),
  shard     STRING METADATA FROM 'shard_id' VIRTUAL,
  seq       STRING METADATA FROM 'sequence_number' VIRTUAL,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH (
  'connector' = 'kinesis',
  'stream' = 'orders',
  'aws.region' = 'us-east-1',
  'aws.endpoint' = 'http://127.0.0.1:4567',
  'aws.credentials.provider' = 'BASIC',
  'aws.credentials.basic.accesskeyid' = 'local',
  'aws.credentials.basic.secretkey' = 'local',
  'scan.stream.initpos' = 'TRIM_HORIZON',
  'scan.bounded' = 'true',
  'format' = 'json'
);

CREATE TABLE customer_minutes (
  customer     STRING,
  window_start TIMESTAMP(3),
  window_end   TIMESTAMP(3),
  orders       BIGINT,
  total        DOUBLE
) WITH (
  'connector' = 'kinesis',
  'stream' = 'customer-minutes',
  'aws.region' = 'us-east-1',
  'aws.endpoint' = 'http://127.0.0.1:4567',
  'aws.credentials.provider' = 'BASIC',
  'aws.credentials.basic.accesskeyid' = 'local',
  'aws.credentials.basic.secretkey' = 'local',
  'sink.partition-key' = 'customer',
  'format' = 'json'
);

INSERT INTO customer_minutes
SELECT customer, window_start, window_end, COUNT(*) AS orders, SUM(amount) AS total
FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY customer, window_start, window_end;
