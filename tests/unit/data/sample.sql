-- The sample database behind the golden dumps and the live verification
-- test. Every value is deterministic, so regenerating the dumps gives the
-- same row counts, digests and sequence values.

CREATE EXTENSION pgcrypto;
CREATE EXTENSION hstore;

CREATE SCHEMA "Mixed Case";
CREATE SCHEMA "ünïcode schema";
CREATE SCHEMA sales;

-- A plain table with a primary key.
CREATE TABLE public.plain (id integer PRIMARY KEY, note text NOT NULL);
INSERT INTO public.plain
SELECT i, 'note ' || i FROM generate_series(1, 1000) AS i;

-- Quoted identifiers: spaces, mixed case, double quotes and non-ASCII.
CREATE TABLE "Mixed Case"."Order Items" (
    "Item ID" integer,
    "qty ""quoted""" integer,
    "ünïcödé" text
);
INSERT INTO "Mixed Case"."Order Items"
SELECT i, i % 7, 'ü' || repeat('€', i % 5) FROM generate_series(1, 50) AS i;

CREATE TABLE "ünïcode schema"."tablé with spaces" (k text, v hstore);
INSERT INTO "ünïcode schema"."tablé with spaces" VALUES
    ('日本語', 'a=>1, b=>2'),
    ('Ελληνικά', '"key with space"=>"value with \"quote\""'),
    ('emoji 🐘', NULL);

-- A partitioned table with an identity column; the data lives in the
-- partitions and the parent has no data of its own.
CREATE TABLE sales.events (
    id bigint GENERATED ALWAYS AS IDENTITY,
    happened timestamptz NOT NULL,
    kind text
) PARTITION BY RANGE (happened);
CREATE TABLE sales.events_2023 PARTITION OF sales.events
    FOR VALUES FROM ('2023-01-01 00:00:00+00') TO ('2024-01-01 00:00:00+00');
CREATE TABLE sales.events_2024 PARTITION OF sales.events
    FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00');
CREATE TABLE sales.events_other PARTITION OF sales.events DEFAULT;
INSERT INTO sales.events (happened, kind)
SELECT timestamptz '2023-06-01 12:00:00+00' + i * interval '7 days 3 hours',
       CASE WHEN i % 3 = 0 THEN 'sale' ELSE 'view' END
FROM generate_series(1, 120) AS i;

-- A stored generated column, which pg_dump leaves out of the COPY list.
CREATE TABLE public.measurements (
    id integer,
    celsius numeric,
    fahrenheit numeric GENERATED ALWAYS AS (celsius * 9 / 5 + 32) STORED
);
INSERT INTO public.measurements (id, celsius)
SELECT i, i * 0.5 - 10 FROM generate_series(1, 40) AS i;

-- Arrays, json, jsonb, floats, intervals and time zones.
CREATE TABLE public.documents (
    id serial PRIMARY KEY,
    tags text[],
    matrix integer[][],
    body json,
    meta jsonb,
    ratio double precision,
    during interval,
    at timestamptz,
    day date
);
INSERT INTO public.documents (tags, matrix, body, meta, ratio, during, at, day)
SELECT ARRAY['t' || i, 'with space', 'quote"d', NULL],
       ARRAY[[i, i + 1], [i + 2, i + 3]],
       json_build_object('n', i, 'text', E'multi\nline'),
       jsonb_build_object('n', i, 'nested', jsonb_build_array(1, 'two', NULL)),
       1.0 / (i + 3),
       make_interval(days => i, secs => i * 1.5),
       timestamptz '2024-03-10 01:30:00+00' + i * interval '1 hour',
       date '2000-02-28' + i
FROM generate_series(1, 30) AS i;

-- bytea: one value of 200 KiB and a few small ones.
CREATE TABLE public.blobs (id integer, payload bytea);
INSERT INTO public.blobs
SELECT 1, decode(string_agg(md5(i::text), '' ORDER BY i), 'hex')
FROM generate_series(1, 12800) AS i;
INSERT INTO public.blobs VALUES (2, ''), (3, '\x00ff5c0a0d09'), (4, NULL);

-- Large objects: empty, small, and 40 KiB.
SELECT lo_from_bytea(0, '');
SELECT lo_from_bytea(0, 'small large object');
SELECT lo_from_bytea(0, decode(string_agg(md5(i::text), '' ORDER BY i), 'hex'))
FROM generate_series(1, 2560) AS i;

-- Sequences: called, not called, descending, near the bigint maximum.
CREATE SEQUENCE public.counter;
SELECT setval('public.counter', 42, true);
CREATE SEQUENCE "Mixed Case"."Odd ""Seq""";
SELECT setval('"Mixed Case"."Odd ""Seq"""', 7, false);
CREATE SEQUENCE public.descending INCREMENT BY -1 MINVALUE -1000 MAXVALUE -1 START WITH -1;
SELECT setval('public.descending', -500, true);
CREATE SEQUENCE public.huge;
SELECT setval('public.huge', 9223372036854775000, true);

-- A materialized view: its contents are rebuilt on restore, not dumped.
CREATE MATERIALIZED VIEW public.plain_summary AS
SELECT count(*) AS total, max(id) AS top FROM public.plain;

-- An empty table, and a table without columns that still has rows.
CREATE TABLE public.empty_table (a integer, b text);
CREATE TABLE public.no_columns ();
INSERT INTO public.no_columns DEFAULT VALUES;
INSERT INTO public.no_columns DEFAULT VALUES;
INSERT INTO public.no_columns DEFAULT VALUES;

-- Text that COPY must escape, a value that reads like the COPY end
-- marker, empty strings next to NULLs, and duplicate rows.
CREATE TABLE public.tricky (id integer, t text);
INSERT INTO public.tricky VALUES
    (1, E'line one\nline two'),
    (2, E'tab\there'),
    (3, E'back\\slash'),
    (4, '\.'),
    (5, '.'),
    (6, ''),
    (7, NULL),
    (8, E'carriage\r\nreturn'),
    (9, 'same'),
    (9, 'same'),
    (9, 'same');

-- One very long row (300 KiB of text).
CREATE TABLE public.long_row (id integer, body text);
INSERT INTO public.long_row
SELECT 1, string_agg(md5(i::text), '' ORDER BY i) FROM generate_series(1, 9600) AS i;
INSERT INTO public.long_row VALUES (2, 'short');
