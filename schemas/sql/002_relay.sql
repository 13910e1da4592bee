-- 002_relay.sql - what the relay keeps in PostgreSQL: partition leases,
-- members, each partition's Kafka position, dead letters, and the index
-- that continues a channel's chain after a failover (docs/relay.md).

-- One row per partition. A relay owns a partition while owner is its id and
-- expires_at (PostgreSQL's clock) is in the future; generation grows on
-- every change of owner, so a relay can tell its lease was taken meanwhile.
CREATE TABLE holdfast.relay_leases (
    partition integer PRIMARY KEY CHECK (partition >= 0),
    owner text,
    generation bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity',
    acquired_at timestamptz
);

-- Live relays, for a fair share of partitions: a relay counts the members
-- seen within a lease TTL and owns at most ceil(partitions / members).
CREATE TABLE holdfast.relay_members (
    id text PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);

-- The Kafka position each partition's outbox rows were moved up to:
-- every record below next_offset in that partition's log has its outbox
-- row deleted and its offset written back. A relay taking over reads the
-- log from here to the end before producing (exactly once across crashes),
-- and a log whose end is below next_offset was reset (new epoch).
CREATE TABLE holdfast.relay_partitions (
    partition integer PRIMARY KEY CHECK (partition >= 0),
    next_offset bigint NOT NULL DEFAULT 0,
    epoch text, -- the epoch in force when next_offset was recorded
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Events Kafka refused for good (too large, invalid). Kept with the reason;
-- their outbox row is gone so the partition moves on.
CREATE TABLE holdfast.dead_letters (
    event_id uuid PRIMARY KEY,
    partition integer NOT NULL,
    channel text NOT NULL,
    reason text NOT NULL,
    attempts integer NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);

-- The relay's chain lookup: a channel's last offset in an epoch.
CREATE INDEX events_channel_epoch_offset ON holdfast.events (channel, epoch, kafka_offset)
    WHERE kafka_offset IS NOT NULL;

-- Records that Kafka holds events at the given offsets: writes each
-- offset (and the epoch) back to its event, deletes the outbox rows, and
-- moves the partitions' next_offset, in one transaction, only while
-- p_owner still holds every lease involved. Raises 'lease lost' otherwise,
-- so a relay whose lease expired can never delete what another relay owns.
-- p_parts/p_ids/p_offsets are parallel; p_pos_parts/p_pos_next too.
CREATE FUNCTION holdfast.relay_commit(p_owner text, p_epoch text, p_parts integer[], p_ids uuid[],
                                      p_offsets bigint[], p_pos_parts integer[], p_pos_next bigint[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_held integer;
    v_deleted bigint;
BEGIN
    SELECT count(*) INTO v_held FROM (
        SELECT partition FROM holdfast.relay_leases
        WHERE partition = ANY(p_pos_parts) AND owner = p_owner AND expires_at > clock_timestamp()
        FOR UPDATE) l;
    IF v_held <> (SELECT count(DISTINCT x) FROM unnest(p_pos_parts) x) THEN
        RAISE EXCEPTION 'lease lost' USING ERRCODE = 'lock_not_available';
    END IF;
    UPDATE holdfast.events e SET kafka_offset = u.o, epoch = p_epoch
    FROM unnest(p_ids, p_offsets) AS u(id, o) WHERE e.id = u.id;
    WITH gone AS (
        DELETE FROM holdfast.outbox o USING unnest(p_ids, p_parts) AS u(id, p)
        WHERE o.event_id = u.id AND o.partition = u.p RETURNING 1)
    SELECT count(*) INTO v_deleted FROM gone;
    INSERT INTO holdfast.relay_partitions AS r (partition, next_offset, epoch)
    SELECT p, n, p_epoch FROM unnest(p_pos_parts, p_pos_next) AS u(p, n)
    ON CONFLICT (partition) DO UPDATE
    SET next_offset = EXCLUDED.next_offset, epoch = EXCLUDED.epoch, updated_at = now();
    RETURN v_deleted;
END
$$;

-- Moves an event Kafka refused for good out of the way of its partition.
CREATE FUNCTION holdfast.relay_dead_letter(p_owner text, p_event uuid, p_reason text,
                                           p_attempts integer)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_partition integer;
    v_channel text;
BEGIN
    SELECT e.partition, e.channel INTO v_partition, v_channel FROM holdfast.events e WHERE e.id = p_event;
    PERFORM 1 FROM holdfast.relay_leases
    WHERE partition = v_partition AND owner = p_owner AND expires_at > clock_timestamp() FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease lost' USING ERRCODE = 'lock_not_available';
    END IF;
    INSERT INTO holdfast.dead_letters (event_id, partition, channel, reason, attempts)
    VALUES (p_event, v_partition, v_channel, p_reason, p_attempts)
    ON CONFLICT (event_id) DO UPDATE SET reason = EXCLUDED.reason, attempts = EXCLUDED.attempts;
    DELETE FROM holdfast.outbox WHERE event_id = p_event;
END
$$;

-- One lease round for relay p_owner, in one transaction: heartbeat as a
-- member, renew the leases it holds, give back what exceeds its fair share
-- (ceil(partitions / live members)), take free or expired partitions up
-- to that share. Returns the partitions it holds afterwards; taken_from is
-- the previous owner of a partition taken over from another relay whose
-- lease had expired (NULL otherwise), is_new marks partitions acquired now.
CREATE FUNCTION holdfast.relay_lease_tick(p_owner text, p_ttl_ms integer)
RETURNS TABLE (partition integer, generation bigint, is_new boolean, taken_from text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_ttl interval := make_interval(secs => p_ttl_ms / 1000.0);
    v_count integer;
    v_alive integer;
    v_share integer;
    v_held integer;
BEGIN
    INSERT INTO holdfast.relay_members AS m (id, seen_at) VALUES (p_owner, clock_timestamp())
    ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at;
    DELETE FROM holdfast.relay_members WHERE seen_at < clock_timestamp() - 10 * v_ttl;
    SELECT count(*) INTO v_alive FROM holdfast.relay_members WHERE seen_at > clock_timestamp() - v_ttl;
    SELECT partition_count INTO v_count FROM holdfast.meta;
    INSERT INTO holdfast.relay_leases (partition) SELECT g FROM generate_series(0, v_count - 1) g
    ON CONFLICT DO NOTHING;
    v_share := ceil(v_count::numeric / greatest(v_alive, 1));

    -- renew, and drop what is beyond the share or the partition count
    UPDATE holdfast.relay_leases l SET expires_at = clock_timestamp() + v_ttl
    WHERE l.owner = p_owner AND l.expires_at > clock_timestamp();
    UPDATE holdfast.relay_leases l SET owner = NULL, expires_at = '-infinity'
    WHERE l.owner = p_owner AND (l.expires_at <= clock_timestamp() OR l.partition >= v_count
          OR l.partition IN (SELECT x.partition FROM holdfast.relay_leases x
                             WHERE x.owner = p_owner AND x.partition < v_count
                             ORDER BY x.partition DESC
                             LIMIT greatest((SELECT count(*) FROM holdfast.relay_leases y
                                             WHERE y.owner = p_owner AND y.partition < v_count
                                               AND y.expires_at > clock_timestamp()) - v_share, 0)));
    SELECT count(*) INTO v_held FROM holdfast.relay_leases l WHERE l.owner = p_owner;

    RETURN QUERY
    WITH free AS (
        SELECT f.partition, f.owner AS prev FROM holdfast.relay_leases f
        WHERE f.partition < v_count AND (f.owner IS NULL OR f.expires_at <= clock_timestamp())
        ORDER BY f.partition LIMIT greatest(v_share - v_held, 0)
        FOR UPDATE SKIP LOCKED
    ), taken AS (
        UPDATE holdfast.relay_leases l
        SET owner = p_owner, generation = l.generation + 1,
            expires_at = clock_timestamp() + v_ttl, acquired_at = clock_timestamp()
        FROM free WHERE l.partition = free.partition
        RETURNING l.partition, l.generation, free.prev
    )
    SELECT t.partition, t.generation, true, CASE WHEN t.prev = p_owner THEN NULL ELSE t.prev END
    FROM taken t
    UNION ALL
    SELECT l.partition, l.generation, false, NULL::text FROM holdfast.relay_leases l
    WHERE l.owner = p_owner AND l.partition NOT IN (SELECT t.partition FROM taken t);
END
$$;

-- A relay stopping cleanly: its partitions are free at once.
CREATE FUNCTION holdfast.relay_leave(p_owner text) RETURNS void
LANGUAGE sql AS $$
    UPDATE holdfast.relay_leases SET owner = NULL, expires_at = '-infinity' WHERE owner = p_owner;
    DELETE FROM holdfast.relay_members WHERE id = p_owner;
$$;
