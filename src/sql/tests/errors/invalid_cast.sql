CREATE SOURCE clicks (
  ts TIMESTAMP, user TEXT, page TEXT, action TEXT, amount DOUBLE
) WITH (topic = 'clicks', format = 'json', event_time = 'ts', lateness = '5s');

CREATE VIEW cast_bad AS
  SELECT CAST(ts AS BOOLEAN) FROM clicks;
