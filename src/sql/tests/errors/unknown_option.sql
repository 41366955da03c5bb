CREATE SOURCE clicks (ts TIMESTAMP, page TEXT)
  WITH (toppic = 'clicks');
