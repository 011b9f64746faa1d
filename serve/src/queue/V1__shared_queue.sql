-- hoist serve's shared queue, version 1. Times in *_at BIGINT columns are Unix milliseconds from the
-- process that wrote them; leases use the database's clock, so workers' clocks may differ.
CREATE TABLE builds (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repo        TEXT NOT NULL,
    git_ref     TEXT NOT NULL,
    sha         TEXT NOT NULL,
    state       TEXT NOT NULL,
    image       TEXT NOT NULL,
    dockerfile  TEXT NOT NULL,
    context     TEXT NOT NULL,
    build_args  TEXT NOT NULL,
    tags        TEXT NOT NULL,
    labels      TEXT[] NOT NULL DEFAULT '{}',
    queued_at   BIGINT NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT,
    digest      TEXT,
    error       TEXT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    worker      TEXT,
    lease_until TIMESTAMPTZ
);
CREATE INDEX builds_state ON builds (state, id);
CREATE INDEX builds_ref ON builds (repo, git_ref, state);

CREATE TABLE deliveries (
    repo     TEXT NOT NULL,
    delivery TEXT NOT NULL,
    seen_at  BIGINT NOT NULL,
    PRIMARY KEY (repo, delivery)
);
CREATE INDEX deliveries_seen ON deliveries (seen_at);

CREATE TABLE log_chunks (
    build_id BIGINT NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    seq      BIGINT GENERATED ALWAYS AS IDENTITY,
    data     BYTEA NOT NULL,
    PRIMARY KEY (build_id, seq)
);

-- One row per tag being published: held by one build under a lease.
CREATE TABLE tag_locks (
    tag         TEXT PRIMARY KEY,
    build_id    BIGINT NOT NULL,
    worker      TEXT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL
);

CREATE TABLE workers (
    name     TEXT PRIMARY KEY,
    labels   TEXT[] NOT NULL,
    load     BIGINT NOT NULL,
    capacity BIGINT NOT NULL,
    seen_at  TIMESTAMPTZ NOT NULL
);

-- The worker that last took a build of each repository (sticky routing).
CREATE TABLE repo_affinity (
    repo   TEXT PRIMARY KEY,
    worker TEXT NOT NULL,
    at     TIMESTAMPTZ NOT NULL
);
