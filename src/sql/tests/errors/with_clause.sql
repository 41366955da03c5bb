CREATE SOURCE clicks (
  ts TIMESTAMP, user TEXT, page TEXT, action TEXT, amount DOUBLE
) WITH (topic = 'clicks', format = 'json', event_time = 'ts', lateness = '5s');

CREATE VIEW buys AS
  WITH b AS (SELECT * FROM clicks WHERE action = 'buy')
  SELECT page FROM b;
