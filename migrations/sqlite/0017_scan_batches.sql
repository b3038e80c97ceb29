-- A ticket's check-ins on a list are found by ticket first. With the list first, this index
-- matched any lookup by list, and a plan made while `checkins` was empty (PostgreSQL keeps a
-- generic plan until statistics change) read a nonce through it, walking every check-in of the
-- list on each scan; now the nonce's unique index is the only one that leads with the list.
DROP INDEX checkins_ticket_idx;
CREATE INDEX checkins_ticket_idx ON checkins (ticket_id, list_id, seq);
