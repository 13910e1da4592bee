-- 001_core.sql: the durable record, the transactional outbox, and the one way in.
--
-- Everything Holdfast keeps lives in the "holdfast" schema. An event is
-- accepted when the transaction holding its events row and its outbox row
-- commits (invariant 1); both are written only by holdfast._append(), which
-- the HTTP ingest (holdfast.ingest) and applications (holdfast.publish)
-- share (invariant 2).

CREATE SCHEMA IF NOT EXISTS holdfast;

-- Partitioning metadata (invariant 3): one row. Changing the partition
-- count bumps the epoch, because positions of different epochs never compare.
CREATE TABLE holdfast.meta (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    partition_count integer NOT NULL CHECK (partition_count BETWEEN 1 AND 4096),
    epoch text NOT NULL,
    epoch_reason text NOT NULL DEFAULT 'created',
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION holdfast.new_epoch() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT substr(md5(gen_random_uuid()::text), 1, 16)
$$;

INSERT INTO holdfast.meta (partition_count, epoch) VALUES (8, holdfast.new_epoch());

CREATE FUNCTION holdfast.meta_bump_epoch_on_repartition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.partition_count <> OLD.partition_count AND NEW.epoch = OLD.epoch THEN
        NEW.epoch := holdfast.new_epoch();
        NEW.epoch_reason := format('partition count %s -> %s', OLD.partition_count, NEW.partition_count);
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER meta_bump_epoch BEFORE UPDATE ON holdfast.meta
    FOR EACH ROW EXECUTE FUNCTION holdfast.meta_bump_epoch_on_repartition();

-- Starts a new epoch (e.g. the relay found the Kafka log reset). Returns it.
CREATE FUNCTION holdfast.bump_epoch(reason text) RETURNS text
LANGUAGE sql AS $$
    UPDATE holdfast.meta SET epoch = holdfast.new_epoch(), epoch_reason = reason RETURNING epoch
$$;

-- Changes the partition count (and so the epoch). Existing events keep the
-- partition they were written with.
CREATE FUNCTION holdfast.set_partition_count(n integer) RETURNS text
LANGUAGE sql AS $$
    UPDATE holdfast.meta SET partition_count = n RETURNING epoch
$$;

-- FNV-1a, 32 bit, over the UTF-8 bytes: the same as hf_fnv1a32() in C.
CREATE FUNCTION holdfast.fnv1a32(data bytea) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    h bigint := 2166136261;
BEGIN
    FOR i IN 0 .. length(data) - 1 LOOP
        h := ((h # get_byte(data, i)::bigint) * 16777619) % 4294967296;
    END LOOP;
    RETURN h;
END
$$;

CREATE FUNCTION holdfast.partition_for(channel text, partition_count integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (holdfast.fnv1a32(convert_to($1, 'UTF8')) % $2)::integer
$$;

CREATE FUNCTION holdfast.partition_for(channel text) RETURNS integer
LANGUAGE sql STABLE STRICT AS $$
    SELECT holdfast.partition_for($1, m.partition_count) FROM holdfast.meta m
$$;

-- The channel-name rule of common/include/holdfast/channel.h.
CREATE FUNCTION holdfast.channel_is_valid(channel text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT $1 ~ '^[A-Za-z0-9][A-Za-z0-9_.:@=-]{0,199}$'
$$;

-- Event types: like channel names, plus '/', at most 100 bytes.
CREATE FUNCTION holdfast.event_type_is_valid(type text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT $1 ~ '^[A-Za-z0-9][A-Za-z0-9_.:@=/-]{0,99}$'
$$;

-- Time-ordered UUIDs (version 7 layout) keep the primary key index append-mostly.
CREATE FUNCTION holdfast.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- The durable record. payload holds the bytes exactly as published.
-- kafka_offset and epoch are written back by the relay once Kafka
-- acknowledged the event.
CREATE TABLE holdfast.events (
    id uuid PRIMARY KEY,
    channel text NOT NULL CHECK (holdfast.channel_is_valid(channel)),
    partition integer NOT NULL CHECK (partition >= 0),
    type text CHECK (type IS NULL OR holdfast.event_type_is_valid(type)),
    payload bytea NOT NULL,
    content_type text NOT NULL DEFAULT 'application/json',
    idempotency_key text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    epoch text,
    kafka_offset bigint
);

-- What the relay still has to move. seq orders a partition's rows.
CREATE TABLE holdfast.outbox (
    seq bigserial PRIMARY KEY,
    event_id uuid NOT NULL,
    partition integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX outbox_partition_seq ON holdfast.outbox (partition, seq);

-- One notification per inserting statement wakes the relay.
CREATE FUNCTION holdfast.outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('holdfast_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON holdfast.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION holdfast.outbox_notify();

-- Idempotency-Key records of the HTTP ingest: the request's hash and the
-- events it created, so a retry returns the originals.
CREATE TABLE holdfast.idempotency_keys (
    key text PRIMARY KEY,
    request_hash bytea NOT NULL,
    event_ids uuid[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_keys_created_at ON holdfast.idempotency_keys (created_at);

-- The only code that writes events and outbox rows: event i is channel
-- p_channels[i], type p_types[i], payload p_payloads[i]. Set-based, so a
-- batch costs two INSERT statements, not two per event; outbox seq follows
-- the array order.
CREATE FUNCTION holdfast._append(p_channels text[], p_types text[], p_payloads bytea[],
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
    ), queued AS (
        INSERT INTO holdfast.outbox (event_id, partition)
        SELECT n.id, n.partition FROM new_events n ORDER BY n.ord
    )
    SELECT n.id, n.channel, n.partition FROM new_events n ORDER BY n.ord;
END
$$;

-- Publish from an application's own transaction: the event is accepted
-- exactly when that transaction commits. The JSON is stored as PostgreSQL
-- prints it; use publish_raw() to keep the exact bytes.
CREATE FUNCTION holdfast.publish(channel text, payload jsonb, type text DEFAULT NULL)
RETURNS uuid
LANGUAGE sql AS $$
    SELECT a.id FROM holdfast._append(ARRAY[$1], ARRAY[$3], ARRAY[convert_to($2::text, 'UTF8')],
                                      'application/json', NULL) a
$$;

CREATE FUNCTION holdfast.publish_raw(channel text, payload bytea,
                                     content_type text DEFAULT 'application/json',
                                     type text DEFAULT NULL)
RETURNS uuid
LANGUAGE sql AS $$
    SELECT a.id FROM holdfast._append(ARRAY[$1], ARRAY[$4], ARRAY[$2], $3, NULL) a
$$;

-- One HTTP request of holdfast-ingest: events i = 1..n are channel p_channels[i],
-- type p_types[i], and the payload bytes p_body[p_offsets[i], +p_lengths[i]).
-- With a key: a first request records it; a retry with the same body gets
-- the original events ('replayed'); a different body gets 'conflict'.
CREATE FUNCTION holdfast.ingest(p_body bytea, p_channels text[], p_types text[],
                                p_offsets integer[], p_lengths integer[], p_key text)
RETURNS TABLE (status text, id uuid, channel text, partition integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_hash bytea;
    v_known holdfast.idempotency_keys;
    v_ids uuid[] := '{}';
    r record;
BEGIN
    IF p_key IS NOT NULL THEN
        v_hash := sha256(p_body);
        -- Waits for a concurrent holder of the same key to commit or abort.
        INSERT INTO holdfast.idempotency_keys (key, request_hash) VALUES (p_key, v_hash)
        ON CONFLICT (key) DO NOTHING;
        IF NOT FOUND THEN
            SELECT * INTO v_known FROM holdfast.idempotency_keys k WHERE k.key = p_key;
            IF v_known.request_hash <> v_hash THEN
                RETURN QUERY SELECT 'conflict'::text, NULL::uuid, NULL::text, NULL::integer;
                RETURN;
            END IF;
            RETURN QUERY
                SELECT 'replayed'::text, e.id, e.channel, e.partition
                FROM unnest(v_known.event_ids) WITH ORDINALITY AS u(eid, ord)
                JOIN holdfast.events e ON e.id = u.eid
                ORDER BY u.ord;
            RETURN;
        END IF;
    END IF;
    FOR r IN
        SELECT a.id, a.channel, a.partition
        FROM holdfast._append(
            p_channels, p_types,
            ARRAY(SELECT substring(p_body FROM s.off + 1 FOR s.len)
                  FROM unnest(p_offsets, p_lengths) WITH ORDINALITY AS s(off, len, ord)
                  ORDER BY s.ord),
            'application/json', p_key) a
    LOOP
        v_ids := v_ids || r.id;
        status := 'created';
        id := r.id;
        channel := r.channel;
        partition := r.partition;
        RETURN NEXT;
    END LOOP;
    IF p_key IS NOT NULL THEN
        UPDATE holdfast.idempotency_keys k SET event_ids = v_ids WHERE k.key = p_key;
    END IF;
END
$$;

-- Forgets Idempotency-Keys older than max_age; returns how many.
CREATE FUNCTION holdfast.expire_idempotency_keys(max_age interval) RETURNS bigint
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM holdfast.idempotency_keys WHERE created_at < now() - max_age RETURNING 1
    )
    SELECT count(*) FROM gone
$$;
