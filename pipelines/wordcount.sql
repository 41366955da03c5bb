-- Word count: lines of text split into lower-case words, a count per word, and
-- the 20 most frequent words.
--
-- Payload: {"line":"The quick brown fox"}

CREATE SOURCE lines (
  line TEXT
) WITH (topic = 'lines', format = 'json');

CREATE VIEW word_counts AS
  SELECT word, COUNT(*) AS occurrences
  FROM lines CROSS JOIN UNNEST(string_to_array(lower(line), ' ')) AS w(word)
  GROUP BY word;

CREATE VIEW top_words AS
  SELECT word, occurrences
  FROM word_counts
  ORDER BY occurrences DESC, word
  LIMIT 20;
