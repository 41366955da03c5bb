CREATE SOURCE clicks (ts TIMESTAMP, page TEXT)
  WITH (event_time = 'page');
