-- A database without large objects, so restore --jobs loads its table data
-- over COPY while the dump streams. It has a big table, foreign keys,
-- indexes, a partitioned table, generated and identity columns, an empty
-- table, non-ASCII text and COPY escapes. Some rows are longer than a COPY
-- chunk, some start with a NULL (whose text "\N" starts like the end
-- marker "\."), and some names need quotes.
CREATE SCHEMA "Sales Data";

CREATE TABLE customers (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    city text
);
INSERT INTO customers (name, city)
SELECT 'customer ' || g, (ARRAY['Zürich', '東京', 'São Paulo', NULL])[1 + g % 4]
FROM generate_series(1, 2000) AS g;

CREATE TABLE "Sales Data"."Order Lines" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    quantity int NOT NULL CHECK (quantity > 0),
    price numeric(10, 2) NOT NULL,
    total numeric GENERATED ALWAYS AS (quantity * price) STORED,
    note text
);
CREATE INDEX "Order Lines by customer" ON "Sales Data"."Order Lines" (customer_id, id);
INSERT INTO "Sales Data"."Order Lines" (customer_id, quantity, price, note)
SELECT 1 + g % 2000, 1 + g % 7, (g % 1000) / 10.0,
       CASE g % 5 WHEN 0 THEN E'tab\there' WHEN 1 THEN E'back\\slash \\. dot' WHEN 2 THEN
       E'line\nbreak' WHEN 3 THEN 'Grüße 🎉' END
FROM generate_series(1, 400000) AS g;

CREATE TABLE measurements (
    id int NOT NULL,
    region text NOT NULL,
    value float8
) PARTITION BY LIST (region);
CREATE TABLE measurements_eu PARTITION OF measurements FOR VALUES IN ('eu');
CREATE TABLE measurements_us PARTITION OF measurements FOR VALUES IN ('us');
ALTER TABLE measurements ADD PRIMARY KEY (id, region);
INSERT INTO measurements
SELECT g, CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END, g * 1.5 FROM generate_series(1, 30000) AS g;

-- The first column is NULL in every other row.
CREATE TABLE sparse (label text, id int PRIMARY KEY);
INSERT INTO sparse SELECT CASE WHEN g % 2 = 0 THEN NULL ELSE '\.' || g END, g
FROM generate_series(1, 50000) AS g;

CREATE TABLE long_rows (id int PRIMARY KEY, body text);
INSERT INTO long_rows SELECT g, repeat(md5(g::text), 100000) FROM generate_series(1, 3) AS g;

CREATE TABLE empty_table (id int PRIMARY KEY, body jsonb);

CREATE TABLE "ünïcödé" (id int PRIMARY KEY, "Wert" text);
INSERT INTO "ünïcödé" VALUES (1, 'ḿüłţïƀÿţë'), (2, 'Ελληνικά'), (3, NULL);

CREATE SEQUENCE invoice_numbers START 1000;
SELECT nextval('invoice_numbers') FROM generate_series(1, 5);
CREATE SEQUENCE unused_numbers;
