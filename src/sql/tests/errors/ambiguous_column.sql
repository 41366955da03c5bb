CREATE SOURCE clicks (
  ts TIMESTAMP, user TEXT, page TEXT, action TEXT, amount DOUBLE
) WITH (topic = 'clicks', format = 'json', event_time = 'ts', lateness = '5s');

CREATE VIEW pairs AS
  SELECT page FROM clicks a JOIN clicks b ON a.user = b.user;
