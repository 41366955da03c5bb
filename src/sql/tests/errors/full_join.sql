CREATE SOURCE clicks (
  ts TIMESTAMP, user TEXT, page TEXT, action TEXT, amount DOUBLE
) WITH (topic = 'clicks', format = 'json', event_time = 'ts', lateness = '5s');

CREATE VIEW pairs AS
  SELECT a.page FROM clicks a FULL OUTER JOIN clicks b ON a.user = b.user;
