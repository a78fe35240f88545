-- Telemetry bookkeeping of the collectors: dead letters (what could not be stored, with the
-- reason) and per-gateway batch sequences (to detect and report gaps). Times are BIGINT Unix
-- milliseconds (UTC).

-- +goose Up
INSERT INTO sequences (name, value) VALUES ('dead_letters', 0);

-- A dead letter is a whole message that could not be decoded (meter empty) or one reading
-- refused for its own reason. payload is the message or reading as received, cut to 64 KiB;
-- payload_bytes is its full size.
CREATE TABLE dead_letters (
    id            BIGINT NOT NULL PRIMARY KEY,
    park_id       TEXT   NOT NULL DEFAULT '',
    gateway_id    TEXT   NOT NULL DEFAULT '',
    topic         TEXT   NOT NULL DEFAULT '',
    seq           BIGINT NOT NULL DEFAULT 0,
    meter         TEXT   NOT NULL DEFAULT '',
    reason        TEXT   NOT NULL,
    payload       TEXT   NOT NULL DEFAULT '',
    payload_bytes BIGINT NOT NULL DEFAULT 0,
    received_at   BIGINT NOT NULL
);

CREATE INDEX dead_letters_park ON dead_letters (park_id, id);
CREATE INDEX dead_letters_received ON dead_letters (received_at);

-- Every batch sequence up to contiguous has been received. Sequences above it that arrived
-- are in gateway_seq_seen; while any is there, a gap is open since gap_since.
CREATE TABLE gateway_seqs (
    gateway_id TEXT   NOT NULL PRIMARY KEY,
    park_id    TEXT   NOT NULL,
    contiguous BIGINT NOT NULL,
    max_seen   BIGINT NOT NULL,
    gap_since  BIGINT,
    batches    BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);

CREATE TABLE gateway_seq_seen (
    gateway_id TEXT   NOT NULL,
    seq        BIGINT NOT NULL,
    PRIMARY KEY (gateway_id, seq)
);

-- +goose Down
DROP TABLE gateway_seq_seen;
DROP TABLE gateway_seqs;
DROP TABLE dead_letters;
DELETE FROM sequences WHERE name = 'dead_letters';
