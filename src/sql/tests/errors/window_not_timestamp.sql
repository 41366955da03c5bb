CREATE SOURCE clicks (
  ts TIMESTAMP, user TEXT, page TEXT, action TEXT, amount DOUBLE
) WITH (topic = 'clicks', format = 'json', event_time = 'ts', lateness = '5s');

CREATE VIEW per_minute AS
  SELECT COUNT(*) FROM TUMBLE(clicks, page, INTERVAL '1' MINUTE);
