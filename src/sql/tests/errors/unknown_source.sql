CREATE SOURCE clicks (
  ts TIMESTAMP, user TEXT, page TEXT, action TEXT, amount DOUBLE
) WITH (topic = 'clicks', format = 'json', event_time = 'ts', lateness = '5s');

CREATE VIEW counts AS
  SELECT page, COUNT(*) FROM clikcs GROUP BY page;
