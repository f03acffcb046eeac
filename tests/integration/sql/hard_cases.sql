-- A database that exercises what logical backups get wrong: identifiers
-- that need quoting, several schemas, partitions, generated columns, arrays,
-- json, large bytea values, large objects, sequences, materialized views,
-- views, functions, triggers, row-level security, comments, contrib
-- extensions and an empty table.
CREATE EXTENSION citext;
CREATE EXTENSION hstore;

CREATE SCHEMA "Sales Data";
CREATE SCHEMA inventory;
CREATE SCHEMA "ünïcødé";

CREATE TABLE "Sales Data"."Order Lines" (
    "Line ID" bigserial PRIMARY KEY,
    "Quantity" integer NOT NULL,
    "Unit Price" numeric(12, 2) NOT NULL,
    "Total" numeric(14, 2) GENERATED ALWAYS AS ("Quantity" * "Unit Price") STORED,
    note text
);
INSERT INTO "Sales Data"."Order Lines" ("Quantity", "Unit Price", note)
SELECT g % 17 + 1, (g % 1000) / 7.0, CASE WHEN g % 5 = 0 THEN E'tab\there\nnewline \\ backslash' END
FROM generate_series(1, 5000) g;

CREATE TABLE "ünïcødé"."Tâble with spaces" (id int PRIMARY KEY, "naïve" citext, attrs hstore);
INSERT INTO "ünïcødé"."Tâble with spaces"
SELECT g, 'Ünïcode ' || g, hstore('k' || g, 'v' || g) FROM generate_series(1, 300) g;

CREATE TABLE inventory.measurements (
    taken_at timestamptz NOT NULL,
    sensor int NOT NULL,
    readings double precision[],
    tags text[],
    payload json,
    details jsonb
) PARTITION BY RANGE (taken_at);
CREATE TABLE inventory.measurements_2025 PARTITION OF inventory.measurements
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE inventory.measurements_2026 PARTITION OF inventory.measurements
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO inventory.measurements
SELECT timestamptz '2025-06-01 00:00:00+00' + g * interval '1 hour', g % 10,
       ARRAY[g / 3.0, g * 1.5, 1e-300, 'NaN'::float8], ARRAY['a', 'b"c', NULL],
       json_build_object('g', g), jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'x'))
FROM generate_series(1, 8000) g;

CREATE TABLE inventory.documents (id int PRIMARY KEY, body bytea);
INSERT INTO inventory.documents
SELECT g, decode(repeat(md5(g::text), 65536 * 3), 'hex') FROM generate_series(1, 3) g;

CREATE TABLE inventory.empty_table (id int, label text);

CREATE SEQUENCE inventory.ticket_numbers START 1000;
SELECT nextval('inventory.ticket_numbers') FROM generate_series(1, 42);

CREATE VIEW "Sales Data".big_orders AS
    SELECT * FROM "Sales Data"."Order Lines" WHERE "Total" > 1000;
CREATE MATERIALIZED VIEW inventory.sensor_counts AS
    SELECT sensor, count(*) AS n FROM inventory.measurements GROUP BY sensor;

CREATE FUNCTION inventory.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.label := coalesce(NEW.label, 'touched');
    RETURN NEW;
END $$;
CREATE TRIGGER empty_touch BEFORE INSERT ON inventory.empty_table
    FOR EACH ROW EXECUTE FUNCTION inventory.touch();

ALTER TABLE "Sales Data"."Order Lines" ENABLE ROW LEVEL SECURITY;
CREATE POLICY small_lines ON "Sales Data"."Order Lines" USING ("Quantity" < 10);

COMMENT ON TABLE inventory.documents IS 'Scanned documents; bytea of several MiB';
COMMENT ON COLUMN "Sales Data"."Order Lines"."Total" IS 'Quantity × unit price';

SELECT lo_from_bytea(0, decode(repeat('ab', 100000), 'hex'));
SELECT lo_from_bytea(0, 'small large object'::bytea);
