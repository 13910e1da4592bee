-- The outbox, as the relay uses it.
--
-- The outbox is a queue: every row is deleted minutes or milliseconds
-- after it was inserted, so after a backlog drains (a Kafka outage, a
-- bulk import) the table and its index are mostly dead tuples, and until
-- a vacuum the relay's fetch walks through them on every batch (measured:
-- commit-to-Redis p50 11 ms -> 25 ms at 1,000 events/s after 50,000 rows
-- drained). Vacuum it after a fixed number of dead rows instead of a
-- fraction of a table that is usually near empty, and without throttling:
-- the table is small, the work is cheap.
ALTER TABLE holdfast.outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 5000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);

-- The relay deletes delivered rows by event id (holdfast.relay_commit,
-- relay_dead_letter). Without this index each delete reads the whole
-- backlog, which makes draining a long Kafka outage quadratic.
CREATE INDEX outbox_event_id ON holdfast.outbox (event_id);
