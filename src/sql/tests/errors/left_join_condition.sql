CREATE SOURCE clicks (
  ts TIMESTAMP, user TEXT, page TEXT, action TEXT, amount DOUBLE
) WITH (topic = 'clicks', format = 'json', event_time = 'ts', lateness = '5s');

CREATE VIEW buyers AS
  SELECT a.page FROM clicks a LEFT JOIN clicks b ON a.user = b.user AND b.action = 'buy';
