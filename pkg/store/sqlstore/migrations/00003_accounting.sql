-- What operators enter for the accounts (value added, process output, green instruments,
-- meter replacements), the published factor-set versions, and the dirty hours of the
-- hourly rollups. Times are BIGINT Unix milliseconds (UTC); months are 'YYYY-MM' text of the
-- park's calendar. An empty optional reference in Go is NULL here, as in 00001.

-- +goose Up
CREATE TABLE value_added (
    park_id           TEXT             NOT NULL,
    enterprise_id     TEXT             NOT NULL,
    month             TEXT             NOT NULL,
    nominal_10k_cny   DOUBLE PRECISION NOT NULL,
    real_growth_index DOUBLE PRECISION NOT NULL,
    base_year         INTEGER          NOT NULL,
    PRIMARY KEY (park_id, enterprise_id, month),
    FOREIGN KEY (park_id, enterprise_id) REFERENCES enterprises (park_id, id)
);

CREATE TABLE process_outputs (
    park_id       TEXT             NOT NULL,
    enterprise_id TEXT             NOT NULL,
    month         TEXT             NOT NULL,
    product       TEXT             NOT NULL,
    tonnes        DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (park_id, enterprise_id, month, product),
    FOREIGN KEY (park_id, enterprise_id) REFERENCES enterprises (park_id, id)
);

-- A green instrument covers MWh of renewable power for [period_from, period_to); enterprise_id
-- NULL: held by the park.
CREATE TABLE instruments (
    park_id       TEXT             NOT NULL REFERENCES parks (id),
    id            TEXT             NOT NULL,
    enterprise_id TEXT,
    kind          TEXT             NOT NULL,
    mwh           DOUBLE PRECISION NOT NULL,
    period_from   BIGINT           NOT NULL,
    period_to     BIGINT           NOT NULL,
    PRIMARY KEY (park_id, id),
    FOREIGN KEY (park_id, enterprise_id) REFERENCES enterprises (park_id, id)
);

CREATE INDEX instruments_period ON instruments (park_id, period_from);

-- The certificate serials of an instrument, in the order given: the serials prefix || lo ..
-- prefix || hi, numbers written with width digits. Serials are unique across parks: no two
-- rows of the same (prefix, width) overlap, which the store checks under the
-- 'instrument_serials' sequence row's lock.
CREATE TABLE instrument_serials (
    park_id       TEXT    NOT NULL,
    instrument_id TEXT    NOT NULL,
    position      INTEGER NOT NULL,
    prefix        TEXT    NOT NULL,
    width         INTEGER NOT NULL,
    lo            BIGINT  NOT NULL,
    hi            BIGINT  NOT NULL,
    PRIMARY KEY (park_id, instrument_id, position),
    FOREIGN KEY (park_id, instrument_id) REFERENCES instruments (park_id, id)
);

CREATE INDEX instrument_serials_range ON instrument_serials (prefix, width, lo);

INSERT INTO sequences (name, value) VALUES ('instrument_serials', 0);

-- One record per (meter, at): the old register's final value and the new one's initial value.
CREATE TABLE meter_replacements (
    park_id     TEXT             NOT NULL,
    meter_id    TEXT             NOT NULL,
    at          BIGINT           NOT NULL,
    old_final   DOUBLE PRECISION NOT NULL,
    new_initial DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (park_id, meter_id, at),
    FOREIGN KEY (park_id, meter_id) REFERENCES meters (park_id, id)
);

-- Published factor-set versions as the file text factors.FormatSet writes. Issued versions
-- never change.
CREATE TABLE factor_sets (
    id         TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    data       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (id, version)
);

-- Clock hours (UTC) whose readings changed, so the rollups around them must be computed again.
-- version is the value of the 'rollup_dirty' sequence when the hour was last marked: versions
-- never repeat, so a claimer's clear removes only the mark it read, even when the hour was
-- cleared and marked again meanwhile. No foreign key: marking is on the ingest path and must
-- not fail while a park is being deleted.
CREATE TABLE rollup_dirty (
    park_id TEXT   NOT NULL,
    hour    BIGINT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (park_id, hour)
);

CREATE INDEX rollup_dirty_hour ON rollup_dirty (hour);

INSERT INTO sequences (name, value) VALUES ('rollup_dirty', 0);

-- +goose Down
DELETE FROM sequences WHERE name = 'rollup_dirty';
DROP TABLE rollup_dirty;
DROP TABLE factor_sets;
DROP TABLE meter_replacements;
DELETE FROM sequences WHERE name = 'instrument_serials';
DROP TABLE instrument_serials;
DROP TABLE instruments;
DROP TABLE process_outputs;
DROP TABLE value_added;
