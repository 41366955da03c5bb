CREATE SOURCE clicks (ts TIMESTAMP, page TEXT)
  WITH (event_time = 'ts', lateness = '5 parsecs');
