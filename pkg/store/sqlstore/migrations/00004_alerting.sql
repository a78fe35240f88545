-- Alerting: rules, the evaluator's alert state, the alert history, silences, notification
-- endpoints, the log of notification deliveries and the evaluator's lease. Times are BIGINT
-- Unix milliseconds (UTC); body columns hold the JSON of the alerting package's structs, and
-- the other columns copy the fields that queries filter on. An empty optional reference in
-- Go is NULL here, as in 00001.

-- +goose Up
INSERT INTO sequences (name, value) VALUES ('alert_history', 0);
INSERT INTO sequences (name, value) VALUES ('deliveries', 0);

-- A rule watches its park, one enterprise or one meter of it (at most one of the two set).
CREATE TABLE alert_rules (
    park_id       TEXT    NOT NULL REFERENCES parks (id),
    id            TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    enterprise_id TEXT,
    meter_id      TEXT,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    body          TEXT    NOT NULL,
    PRIMARY KEY (park_id, id),
    FOREIGN KEY (park_id, enterprise_id) REFERENCES enterprises (park_id, id),
    FOREIGN KEY (park_id, meter_id) REFERENCES meters (park_id, id)
);

-- The state of every (rule, label set) that is not inactive: inactive alerts are deleted.
-- changed_at is the latest of the alert's pending_since, fired_at and resolved_at; enterprise
-- its "enterprise" label ('' without one).
CREATE TABLE alerts (
    id         TEXT   NOT NULL PRIMARY KEY,
    park_id    TEXT   NOT NULL,
    rule_id    TEXT   NOT NULL,
    state      TEXT   NOT NULL,
    severity   TEXT   NOT NULL,
    enterprise TEXT   NOT NULL DEFAULT '',
    changed_at BIGINT NOT NULL,
    body       TEXT   NOT NULL,
    FOREIGN KEY (park_id, rule_id) REFERENCES alert_rules (park_id, id)
);

CREATE INDEX alerts_park_state ON alerts (park_id, state);
CREATE INDEX alerts_park_changed ON alerts (park_id, changed_at);
CREATE INDEX alerts_rule ON alerts (park_id, rule_id);

-- Every state change of an alert, kept when its rule and the alert are deleted (no foreign
-- key to either). labels is a JSON object.
CREATE TABLE alert_history (
    id       BIGINT           NOT NULL PRIMARY KEY,
    alert_id TEXT             NOT NULL,
    rule_id  TEXT             NOT NULL,
    park_id  TEXT             NOT NULL REFERENCES parks (id),
    kind     TEXT             NOT NULL,
    state    TEXT             NOT NULL,
    value    DOUBLE PRECISION NOT NULL,
    at       BIGINT           NOT NULL,
    labels   TEXT             NOT NULL DEFAULT '{}',
    detail   TEXT             NOT NULL DEFAULT ''
);

CREATE INDEX alert_history_park_at ON alert_history (park_id, at);
CREATE INDEX alert_history_alert_at ON alert_history (alert_id, at);

-- Silences stay after they end (the list shows expired ones too).
CREATE TABLE silences (
    park_id   TEXT   NOT NULL REFERENCES parks (id),
    id        TEXT   NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at   BIGINT NOT NULL,
    body      TEXT   NOT NULL,
    PRIMARY KEY (park_id, id)
);

-- body holds a webhook's signing secret in the clear: the notifier needs it to compute the
-- HMAC of every delivery, so it cannot be hashed. The audit log shows it as "***".
CREATE TABLE notification_endpoints (
    park_id TEXT NOT NULL REFERENCES parks (id),
    id      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    body    TEXT NOT NULL,
    PRIMARY KEY (park_id, id)
);

-- One row per attempt to notify an endpoint. A log: no foreign key to the endpoint or the
-- alert, which may be deleted after.
CREATE TABLE deliveries (
    id          BIGINT  NOT NULL PRIMARY KEY,
    park_id     TEXT    NOT NULL REFERENCES parks (id),
    endpoint_id TEXT    NOT NULL,
    alert_id    TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    at          BIGINT  NOT NULL,
    ok          BOOLEAN NOT NULL,
    status      TEXT    NOT NULL DEFAULT '',
    error       TEXT    NOT NULL DEFAULT '',
    duration_ms BIGINT  NOT NULL DEFAULT 0
);

CREATE INDEX deliveries_park_at ON deliveries (park_id, at);
CREATE INDEX deliveries_alert_at ON deliveries (alert_id, at);

-- Named leases, so that of several server instances one runs the evaluator.
CREATE TABLE leases (
    name       TEXT   NOT NULL PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE leases;
DROP TABLE deliveries;
DROP TABLE notification_endpoints;
DROP TABLE silences;
DROP TABLE alert_history;
DROP TABLE alerts;
DROP TABLE alert_rules;
DELETE FROM sequences WHERE name = 'deliveries';
DELETE FROM sequences WHERE name = 'alert_history';
