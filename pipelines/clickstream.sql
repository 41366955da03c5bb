-- The reference clickstream workload (/work/shared/workloads/clickstream.md):
-- one source of JSON click events and the four views every benchmark reports.
--
-- Payload: {"ts":1700000000002,"user":"u18289","page":"/p/281","action":"click","amount":0.0}

CREATE SOURCE clicks (
  ts TIMESTAMP NOT NULL,
  user TEXT,
  page TEXT,
  action TEXT,
  amount DOUBLE
) WITH (topic = 'clicks', format = 'json', event_time = 'ts', lateness = '5s', key = 'user');

-- Views per page and 1-minute tumbling event-time window.
CREATE VIEW page_minute_counts AS
  SELECT page, window_start, COUNT(*) AS views
  FROM TUMBLE(clicks, ts, INTERVAL '1' MINUTE)
  GROUP BY page, window_start;

-- Distinct users per page.
CREATE VIEW page_distinct_users AS
  SELECT page, COUNT(DISTINCT user) AS users
  FROM clicks
  GROUP BY page;

-- Revenue and purchases per user.
CREATE VIEW user_revenue AS
  SELECT user, SUM(amount) AS revenue, COUNT(*) AS purchases
  FROM clicks
  WHERE action = 'buy'
  GROUP BY user;

-- The 10 pages with the most events, ties broken by page ascending.
CREATE VIEW top_pages AS
  SELECT page, COUNT(*) AS events
  FROM clicks
  GROUP BY page
  ORDER BY events DESC, page
  LIMIT 10;
