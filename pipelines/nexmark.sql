-- Nexmark (https://github.com/nexmark/nexmark) queries q0-q5, q7 and q8 over one
-- source of JSON events, written as the standard Nexmark SQL as far as the
-- surface allows (see pipelines/README.md, "Nexmark").
--
-- Each record is one event, tagged by `type`, with the event in a nested object
-- named like the type and the standard snake_case Nexmark fields; money is in
-- cents, times are epoch milliseconds:
--
--   {"type":"person","person":{"id":1000,"name":"Ann Smith","email_address":"a@x.com",
--     "credit_card":"1234 5678 9012 3456","city":"Boise","state":"ID","date_time":1700000000000,"extra":""}}
--   {"type":"auction","auction":{"id":1000,"item_name":"lamp","description":"old","initial_bid":100,
--     "reserve":500,"date_time":1700000000001,"expires":1700000010001,"seller":1000,"category":10,"extra":""}}
--   {"type":"bid","bid":{"auction":1000,"bidder":1001,"price":250,"channel":"web",
--     "url":"https://x/1","date_time":1700000000002,"extra":""}}
--
-- The source has no event_time (the three kinds keep their time in different
-- fields), so no record is late; the windows use each event's date_time.

CREATE SOURCE nexmark (
  type TEXT NOT NULL,
  p_id BIGINT PATH 'person.id',
  p_name TEXT PATH 'person.name',
  p_email_address TEXT PATH 'person.email_address',
  p_credit_card TEXT PATH 'person.credit_card',
  p_city TEXT PATH 'person.city',
  p_state TEXT PATH 'person.state',
  p_date_time TIMESTAMP PATH 'person.date_time',
  p_extra TEXT PATH 'person.extra',
  a_id BIGINT PATH 'auction.id',
  a_item_name TEXT PATH 'auction.item_name',
  a_description TEXT PATH 'auction.description',
  a_initial_bid BIGINT PATH 'auction.initial_bid',
  a_reserve BIGINT PATH 'auction.reserve',
  a_date_time TIMESTAMP PATH 'auction.date_time',
  a_expires TIMESTAMP PATH 'auction.expires',
  a_seller BIGINT PATH 'auction.seller',
  a_category BIGINT PATH 'auction.category',
  a_extra TEXT PATH 'auction.extra',
  b_auction BIGINT PATH 'bid.auction',
  b_bidder BIGINT PATH 'bid.bidder',
  b_price BIGINT PATH 'bid.price',
  b_channel TEXT PATH 'bid.channel',
  b_url TEXT PATH 'bid.url',
  b_date_time TIMESTAMP PATH 'bid.date_time',
  b_extra TEXT PATH 'bid.extra'
) WITH (topic = 'nexmark', format = 'json');

-- The three event streams of the benchmark, as views.
CREATE VIEW person AS
  SELECT p_id AS id, p_name AS name, p_email_address AS email_address,
         p_credit_card AS credit_card, p_city AS city, p_state AS state,
         p_date_time AS date_time, p_extra AS extra
  FROM nexmark WHERE type = 'person';

CREATE VIEW auction AS
  SELECT a_id AS id, a_item_name AS item_name, a_description AS description,
         a_initial_bid AS initial_bid, a_reserve AS reserve, a_date_time AS date_time,
         a_expires AS expires, a_seller AS seller, a_category AS category, a_extra AS extra
  FROM nexmark WHERE type = 'auction';

CREATE VIEW bid AS
  SELECT b_auction AS auction, b_bidder AS bidder, b_price AS price, b_channel AS channel,
         b_url AS url, b_date_time AS date_time, b_extra AS extra
  FROM nexmark WHERE type = 'bid';

-- q0: pass-through.
CREATE VIEW q0 AS
  SELECT auction, bidder, price, date_time, extra FROM bid;

-- q1: currency conversion (dollars to euros).
CREATE VIEW q1 AS
  SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid;

-- q2: selection.
CREATE VIEW q2 AS
  SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;

-- q3: local item suggestion.
CREATE VIEW q3 AS
  SELECT P.name, P.city, P.state, A.id
  FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
  WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');

-- q4: average price of the winning bids per category.
CREATE VIEW q4 AS
  SELECT Q.category, AVG(Q.final) AS avg_final
  FROM (
    SELECT MAX(B.price) AS final, A.category
    FROM auction AS A JOIN bid AS B ON A.id = B.auction
    WHERE B.date_time BETWEEN A.date_time AND A.expires
    GROUP BY A.id, A.category
  ) AS Q
  GROUP BY Q.category;

-- q5: hot items: the auctions with the most bids per 10-second window, sliding
-- every 2 seconds.
CREATE VIEW q5 AS
  SELECT AuctionBids.auction, AuctionBids.num
  FROM (
    SELECT auction, COUNT(*) AS num, window_start AS starttime, window_end AS endtime
    FROM HOP(bid, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND)
    GROUP BY auction, window_start, window_end
  ) AS AuctionBids
  JOIN (
    SELECT MAX(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime
    FROM (
      SELECT COUNT(*) AS num, window_start AS starttime, window_end AS endtime
      FROM HOP(bid, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND)
      GROUP BY auction, window_start, window_end
    ) AS CountBids
    GROUP BY CountBids.starttime, CountBids.endtime
  ) AS MaxBids
  ON AuctionBids.starttime = MaxBids.starttime
     AND AuctionBids.endtime = MaxBids.endtime
     AND AuctionBids.num >= MaxBids.maxn;

-- q7: the highest bids per 10-second tumbling window.
CREATE VIEW q7 AS
  SELECT B.auction, B.price, B.bidder, B.date_time, B.extra
  FROM bid AS B
  JOIN (
    SELECT MAX(price) AS maxprice, window_end AS date_time
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
    GROUP BY window_start, window_end
  ) AS B1
  ON B.price = B1.maxprice
  WHERE B.date_time BETWEEN B1.date_time - INTERVAL '10' SECOND AND B1.date_time;

-- q8: people who opened an account and created an auction in the same
-- 10-second window.
CREATE VIEW q8 AS
  SELECT P.id, P.name, P.starttime
  FROM (
    SELECT id, name, window_start AS starttime, window_end AS endtime
    FROM TUMBLE(person, date_time, INTERVAL '10' SECOND)
    GROUP BY id, name, window_start, window_end
  ) AS P
  JOIN (
    SELECT seller, window_start AS starttime, window_end AS endtime
    FROM TUMBLE(auction, date_time, INTERVAL '10' SECOND)
    GROUP BY seller, window_start, window_end
  ) AS A
  ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;
