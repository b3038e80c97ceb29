-- A ticket's check-ins on a list are found by ticket first. With the list first, this index
-- matched any lookup by list, and a plan made while `checkins` was empty (PostgreSQL keeps a
-- generic plan until statistics change) read a nonce through it, walking every check-in of the
-- list on each scan; now the nonce's unique index is the only one that leads with the list.
DROP INDEX checkins_ticket_idx;
CREATE INDEX checkins_ticket_idx ON checkins (ticket_id, list_id, seq);

-- A refusal's counter is locked before its row is written, not after (the count itself still
-- moves after the row, in `checkin_refusals_counted`). With the counter taken after, two
-- transactions refusing one nonce could each hold what the other waits for: one the counter
-- (taken for another nonce of the shard), the other the nonce's row.
CREATE FUNCTION lock_checkin_refusal_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM FROM checkin_refusal_counts
    WHERE list_id = NEW.list_id AND shard = NEW.shard FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO checkin_refusal_counts (list_id, shard, logged)
        VALUES (NEW.list_id, NEW.shard, 0) ON CONFLICT DO NOTHING;
        PERFORM FROM checkin_refusal_counts
        WHERE list_id = NEW.list_id AND shard = NEW.shard FOR UPDATE;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER checkin_refusals_counter_locked BEFORE INSERT ON checkin_refusals
    FOR EACH ROW EXECUTE FUNCTION lock_checkin_refusal_count();
