-- The registry (parks, enterprises, meters, gateways), bearer tokens and the audit log.
--
-- One file for SQLite and PostgreSQL, so only portable SQL: TEXT, BIGINT, INTEGER,
-- DOUBLE PRECISION, BOOLEAN. Times are BIGINT Unix milliseconds (UTC). An empty optional
-- reference in Go is NULL here, so the foreign keys (MATCH SIMPLE) skip it.

-- +goose Up
CREATE TABLE parks (
    id       TEXT NOT NULL PRIMARY KEY,
    name     TEXT NOT NULL,
    province TEXT NOT NULL DEFAULT '',
    timezone TEXT NOT NULL
);

CREATE TABLE enterprises (
    park_id         TEXT    NOT NULL REFERENCES parks (id),
    id              TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    industry_code   TEXT    NOT NULL DEFAULT '',
    credit_code     TEXT    NOT NULL DEFAULT '',
    key_energy_user BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (park_id, id)
);

-- A gateway id is its MQTT user name, so it is unique across parks; (park_id, id) is the
-- target of the meters' composite foreign key.
CREATE TABLE gateways (
    id            TEXT NOT NULL PRIMARY KEY,
    park_id       TEXT NOT NULL REFERENCES parks (id),
    name          TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL DEFAULT '',
    UNIQUE (park_id, id)
);

CREATE TABLE meters (
    park_id          TEXT             NOT NULL REFERENCES parks (id),
    id               TEXT             NOT NULL,
    enterprise_id    TEXT,
    carrier          TEXT             NOT NULL,
    direction        TEXT             NOT NULL,
    kind             TEXT             NOT NULL,
    unit             TEXT             NOT NULL,
    multiplier       DOUBLE PRECISION NOT NULL,
    rollover         DOUBLE PRECISION NOT NULL,
    green_class      TEXT             NOT NULL,
    gateway_id       TEXT,
    interval_seconds INTEGER          NOT NULL,
    rated_capacity   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (park_id, id),
    FOREIGN KEY (park_id, enterprise_id) REFERENCES enterprises (park_id, id),
    FOREIGN KEY (park_id, gateway_id) REFERENCES gateways (park_id, id)
);

CREATE INDEX meters_enterprise ON meters (park_id, enterprise_id);
CREATE INDEX meters_gateway ON meters (gateway_id);

-- Tokens outlive parks: no foreign keys. park_ids is a JSON array of park ids.
CREATE TABLE tokens (
    id            TEXT   NOT NULL PRIMARY KEY,
    hash          TEXT   NOT NULL UNIQUE,
    name          TEXT   NOT NULL DEFAULT '',
    role          TEXT   NOT NULL,
    park_ids      TEXT   NOT NULL DEFAULT '[]',
    enterprise_id TEXT   NOT NULL DEFAULT '',
    gateway_id    TEXT   NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL
);

-- Counters for ids that must be assigned the same way on both databases (SQLite has no
-- identity columns, PostgreSQL no rowid). Taking the next value locks the row until commit,
-- so ids are handed out in commit order.
CREATE TABLE sequences (
    name  TEXT   NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);

INSERT INTO sequences (name, value) VALUES ('audit_log', 0);

-- Audit rows outlive what they describe: no foreign keys. before_json and after_json are
-- the JSON of the registry structs, NULL for none.
CREATE TABLE audit_log (
    id          BIGINT NOT NULL PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    resource    TEXT   NOT NULL,
    park_id     TEXT   NOT NULL DEFAULT '',
    before_json TEXT,
    after_json  TEXT
);

CREATE INDEX audit_log_park ON audit_log (park_id, id);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE sequences;
DROP TABLE tokens;
DROP TABLE meters;
DROP TABLE gateways;
DROP TABLE enterprises;
DROP TABLE parks;
