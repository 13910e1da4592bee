-- 004_logical_decoding.sql: the relay reads committed events from the WAL.
--
-- Until now every event was written four times (its events row, an outbox
-- row, the relay's UPDATE of the events row with its offset, the outbox
-- DELETE), every publishing transaction took PostgreSQL's database-wide
-- notification lock at commit (the outbox's NOTIFY trigger), and the relay
-- read new rows through an index full of dead outbox tuples. Now:
--
--   * a publishing transaction inserts its events rows and nothing else;
--   * the relay streams those inserts, in commit order, from a logical
--     replication slot (pgoutput, publication holdfast_events): no table
--     to poll or drain, no NOTIFY, nothing that serializes publishers;
--   * the relay records each event's Kafka offset by appending one narrow
--     row to holdfast.event_offsets (insert-only; events rows are never
--     rewritten);
--   * events the slot never delivered (a slot lost in a PostgreSQL
--     failover) are still found in holdfast.events: those without an
--     event_offsets row (docs/relay.md, "A lost slot").
--
-- Needs wal_level = logical on the server (the local stack, the tests and
-- the Kubernetes manifests set it).

-- ---- epochs by number ----------------------------------------------------
-- event_offsets carries the epoch on every row and in its index; a 4-byte
-- id instead of the 16-character text keeps both narrow. Every epoch
-- holdfast.meta ever had gets a row (the trigger below).
CREATE TABLE holdfast.epochs (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    epoch text NOT NULL UNIQUE,
    started_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO holdfast.epochs (epoch) SELECT epoch FROM holdfast.meta;
INSERT INTO holdfast.epochs (epoch)
    SELECT DISTINCT epoch FROM holdfast.events WHERE epoch IS NOT NULL
    ON CONFLICT (epoch) DO NOTHING;

CREATE FUNCTION holdfast.meta_record_epoch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO holdfast.epochs (epoch) VALUES (NEW.epoch) ON CONFLICT (epoch) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER meta_record_epoch AFTER UPDATE ON holdfast.meta
    FOR EACH ROW WHEN (NEW.epoch IS DISTINCT FROM OLD.epoch)
    EXECUTE FUNCTION holdfast.meta_record_epoch();

-- ---- offsets, recorded beside the events --------------------------------
-- One row per event Kafka holds, appended by the relay after the record
-- was acknowledged (invariant 5). Columns ordered for alignment. The
-- unique index answers a channel's last offset in an epoch (the relay's
-- chain after a failover) and a channel's events by offset (the history
-- API); the BRIN index on the time-ordered event ids finds the rows of a
-- time window (reconciling after a lost slot) at almost no write cost.
CREATE TABLE holdfast.event_offsets (
    kafka_offset bigint NOT NULL,
    event_id uuid NOT NULL,
    epoch_id integer NOT NULL,
    channel text NOT NULL
);
CREATE UNIQUE INDEX event_offsets_channel ON holdfast.event_offsets (channel, epoch_id, kafka_offset);
CREATE INDEX event_offsets_event_id ON holdfast.event_offsets USING brin (event_id);
-- Insert-only: vacuum it for its visibility map (index-only scans), never
-- for dead rows.
ALTER TABLE holdfast.event_offsets SET (autovacuum_vacuum_insert_scale_factor = 0.05);

INSERT INTO holdfast.event_offsets (kafka_offset, event_id, epoch_id, channel)
SELECT e.kafka_offset, e.id, ep.id, e.channel
FROM holdfast.events e JOIN holdfast.epochs ep ON ep.epoch = e.epoch
WHERE e.kafka_offset IS NOT NULL;

DROP INDEX holdfast.events_channel_epoch_offset;
ALTER TABLE holdfast.events DROP COLUMN kafka_offset, DROP COLUMN epoch;

-- Every event with its position, when it has one: what operators, tools
-- and tests read instead of joining the two tables themselves.
CREATE VIEW holdfast.event_log AS
SELECT e.id, e.channel, e.partition, e.type, e.payload, e.content_type, e.idempotency_key,
       e.created_at, ep.epoch, o.kafka_offset
FROM holdfast.events e
LEFT JOIN holdfast.event_offsets o ON o.event_id = e.id
LEFT JOIN holdfast.epochs ep ON ep.id = o.epoch_id;

-- ---- no outbox ------------------------------------------------------------
-- Events still waiting in the outbox have no event_offsets row: the relay's
-- first start with a new slot reconciles them from holdfast.events.
DROP TRIGGER outbox_notify ON holdfast.outbox;
DROP FUNCTION holdfast.outbox_notify();
DROP FUNCTION holdfast.relay_commit(text, text, integer[], uuid[], bigint[], integer[], bigint[]);
DROP FUNCTION holdfast.relay_dead_letter(text, uuid, text, integer);
DROP TABLE holdfast.outbox;

-- The only code that writes events: as before, minus the outbox row.
CREATE OR REPLACE FUNCTION holdfast._append(p_channels text[], p_types text[], p_payloads bytea[],
                                            p_content_type text, p_idempotency_key text)
RETURNS TABLE (id uuid, channel text, partition integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_bad text;
    v_partitions integer;
BEGIN
    SELECT c INTO v_bad FROM unnest(p_channels) AS c
    WHERE c IS NULL OR NOT holdfast.channel_is_valid(c) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'invalid channel name: %', coalesce(quote_literal(v_bad), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '1..200 bytes of letters, digits and _ . : @ = -, starting with a letter or digit';
    END IF;
    IF array_position(p_payloads, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'payload must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT m.partition_count INTO v_partitions FROM holdfast.meta m;
    RETURN QUERY
    WITH new_events AS MATERIALIZED (
        SELECT holdfast.uuid_v7() AS id, e.channel, holdfast.partition_for(e.channel, v_partitions) AS partition,
               e.type, e.payload, e.ord
        FROM unnest(p_channels, p_types, p_payloads) WITH ORDINALITY AS e(channel, type, payload, ord)
    ), stored AS (
        INSERT INTO holdfast.events (id, channel, partition, type, payload, content_type, idempotency_key)
        SELECT n.id, n.channel, n.partition, n.type, n.payload,
               coalesce(p_content_type, 'application/json'), p_idempotency_key
        FROM new_events n ORDER BY n.ord
    )
    SELECT n.id, n.channel, n.partition FROM new_events n ORDER BY n.ord;
END
$$;

-- One event from an application's own transaction: one INSERT. PL/pgSQL
-- rather than a SQL function, whose body PostgreSQL would parse and plan
-- again on every call (most of publish()'s cost before); the channel is
-- checked first for a clear error (the table's CHECK would refuse it too).
CREATE OR REPLACE FUNCTION holdfast.publish_raw(channel text, payload bytea,
                                                content_type text DEFAULT 'application/json',
                                                type text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    v_id uuid;
BEGIN
    IF channel IS NULL OR NOT holdfast.channel_is_valid(channel) THEN
        RAISE EXCEPTION 'invalid channel name: %', coalesce(quote_literal(channel), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '1..200 bytes of letters, digits and _ . : @ = -, starting with a letter or digit';
    END IF;
    IF payload IS NULL THEN
        RAISE EXCEPTION 'payload must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO holdfast.events (id, channel, partition, type, payload, content_type)
    VALUES (holdfast.uuid_v7(), channel,
            holdfast.partition_for(channel, (SELECT m.partition_count FROM holdfast.meta m)),
            type, payload, coalesce(content_type, 'application/json'))
    RETURNING id INTO v_id;
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION holdfast.publish(channel text, payload jsonb, type text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql AS $$
BEGIN
    RETURN holdfast.publish_raw(channel, convert_to(payload::text, 'UTF8'), 'application/json', type);
END
$$;

-- What the relay's logical replication slot streams: inserts into events.
CREATE PUBLICATION holdfast_events FOR TABLE holdfast.events WITH (publish = 'insert');

-- ---- the relay: one leader ------------------------------------------------
-- A replication slot has one reader at a time, so one relay (the holder of
-- this lease) moves every partition; other replicas stand by and take over
-- when the lease expires. The lease has an expiry on PostgreSQL's clock
-- for the reason docs/relay.md gives (a relay that lost it must stop
-- producing before another may start).
DROP FUNCTION holdfast.relay_lease_tick(text, integer);
DROP FUNCTION holdfast.relay_leave(text);
DROP TABLE holdfast.relay_leases;
DROP TABLE holdfast.relay_members;

CREATE TABLE holdfast.relay_leader (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    owner text,
    generation bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity',
    acquired_at timestamptz
);
INSERT INTO holdfast.relay_leader DEFAULT VALUES;

-- One lease round: renews the caller's lease, or takes it when free or
-- expired. leader says whether the caller holds it afterwards; taken_from
-- names the previous owner when it was taken over from another relay.
CREATE FUNCTION holdfast.relay_lease_tick(p_owner text, p_ttl_ms integer)
RETURNS TABLE (leader boolean, generation bigint, owner text, taken_from text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_ttl interval := make_interval(secs => p_ttl_ms / 1000.0);
    v_row holdfast.relay_leader;
BEGIN
    UPDATE holdfast.relay_leader l SET expires_at = clock_timestamp() + v_ttl
    WHERE l.owner = p_owner AND l.expires_at > clock_timestamp()
    RETURNING * INTO v_row;
    IF FOUND THEN
        RETURN QUERY SELECT true, v_row.generation, v_row.owner, NULL::text;
        RETURN;
    END IF;
    -- SKIP LOCKED: a leader's commit holds the row; a standby never waits on it.
    SELECT * INTO v_row FROM holdfast.relay_leader l FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, NULL::bigint, NULL::text, NULL::text;
        RETURN;
    END IF;
    IF v_row.owner IS NOT NULL AND v_row.expires_at > clock_timestamp() THEN
        RETURN QUERY SELECT false, v_row.generation, v_row.owner, NULL::text;
        RETURN;
    END IF;
    UPDATE holdfast.relay_leader l
    SET owner = p_owner, generation = l.generation + 1, expires_at = clock_timestamp() + v_ttl,
        acquired_at = clock_timestamp();
    RETURN QUERY SELECT true, v_row.generation + 1, p_owner,
        CASE WHEN v_row.owner IS DISTINCT FROM p_owner THEN v_row.owner END;
END
$$;

-- A relay stopping cleanly: the lease is free at once.
CREATE FUNCTION holdfast.relay_leave(p_owner text) RETURNS void
LANGUAGE sql AS $$
    UPDATE holdfast.relay_leader SET owner = NULL, expires_at = '-infinity' WHERE owner = p_owner;
$$;

-- Per partition, besides next_offset (every record below it in Kafka has
-- its event_offsets row): the stream position (commit LSN of the event's
-- transaction, its place in the transaction) of the last event recorded,
-- which the stream skips when it sends it again after a restart; and the
-- "known" range [known_from, known_to) of records a resync found in Kafka
-- and recorded before the stream brought their events, which the stream
-- skips by event id until it has passed known_lsn (docs/relay.md).
ALTER TABLE holdfast.relay_partitions
    ADD COLUMN stream_lsn pg_lsn,
    ADD COLUMN stream_ord integer,
    ADD COLUMN known_from bigint,
    ADD COLUMN known_to bigint,
    ADD COLUMN known_lsn pg_lsn;

-- The slot the relay reads and how far everything is recorded: every
-- transaction that committed before confirmed_lsn (at confirmed_at) has
-- all its events recorded. When the slot has to be created (first start,
-- or lost in a PostgreSQL failover) reconcile_pending is set first; the
-- relay then produces the events holdfast.events holds without an offset
-- (back from confirmed_at, or all of them when it is NULL) and clears it.
CREATE TABLE holdfast.relay_slot (
    name text PRIMARY KEY,
    confirmed_lsn pg_lsn,
    confirmed_at timestamptz,
    reconcile_pending boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Raises 'lease lost' unless p_owner holds the lease of generation
-- p_generation; locks the lease row until the end of the transaction.
CREATE FUNCTION holdfast.relay_fence(p_owner text, p_generation bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM holdfast.relay_leader
    WHERE owner = p_owner AND generation = p_generation AND expires_at > clock_timestamp()
    FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease lost' USING ERRCODE = 'lock_not_available';
    END IF;
END
$$;

-- The end of a relay commit, in the transaction whose COPY appended the
-- batch's event_offsets rows: the fence, then each partition's position
-- (parallel arrays; NULL known_* clears the known range) and the slot's.
CREATE FUNCTION holdfast.relay_commit(p_owner text, p_generation bigint, p_epoch text,
                                      p_parts integer[], p_next bigint[], p_lsn pg_lsn[],
                                      p_ord integer[], p_known_from bigint[], p_known_to bigint[],
                                      p_known_lsn pg_lsn[], p_slot text, p_confirmed_lsn pg_lsn,
                                      p_confirmed_at timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM holdfast.relay_fence(p_owner, p_generation);
    INSERT INTO holdfast.relay_partitions AS r
        (partition, next_offset, epoch, stream_lsn, stream_ord, known_from, known_to, known_lsn)
    SELECT u.p, u.n, p_epoch, u.l, u.o, u.kf, u.kt, u.kl
    FROM unnest(p_parts, p_next, p_lsn, p_ord, p_known_from, p_known_to, p_known_lsn)
         AS u(p, n, l, o, kf, kt, kl)
    ON CONFLICT (partition) DO UPDATE
    SET next_offset = EXCLUDED.next_offset, epoch = EXCLUDED.epoch,
        stream_lsn = EXCLUDED.stream_lsn, stream_ord = EXCLUDED.stream_ord,
        known_from = EXCLUDED.known_from, known_to = EXCLUDED.known_to,
        known_lsn = EXCLUDED.known_lsn, updated_at = now();
    IF p_slot IS NOT NULL AND p_confirmed_lsn IS NOT NULL THEN
        UPDATE holdfast.relay_slot
        SET confirmed_lsn = greatest(confirmed_lsn, p_confirmed_lsn),
            confirmed_at = greatest(confirmed_at, p_confirmed_at)
        WHERE name = p_slot;
    END IF;
END
$$;

-- Moves an event Kafka refused for good out of its partition's way. The
-- relay has the event from the stream; nothing else is deleted.
CREATE FUNCTION holdfast.relay_dead_letter(p_owner text, p_generation bigint, p_event uuid,
                                           p_partition integer, p_channel text, p_reason text,
                                           p_attempts integer)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM holdfast.relay_fence(p_owner, p_generation);
    INSERT INTO holdfast.dead_letters (event_id, partition, channel, reason, attempts)
    VALUES (p_event, p_partition, p_channel, p_reason, p_attempts)
    ON CONFLICT (event_id) DO UPDATE SET reason = EXCLUDED.reason, attempts = EXCLUDED.attempts;
END
$$;
