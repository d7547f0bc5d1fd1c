-- Token buckets for rate limits shared by every worker (CARE_GRAPH_RATE_STORE=postgres):
-- one row per token subject or client address. Unlogged: a lost count after a crash only
-- forgives some requests. Rows idle for an hour are dropped by the server's sweeper.
CREATE UNLOGGED TABLE rate_buckets (
    key text PRIMARY KEY,
    tokens float8 NOT NULL,
    allowed boolean NOT NULL,
    updated_at timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE, DELETE ON rate_buckets TO care_graph_app;

-- the tokens a bucket holds now: what it had, refilled at rate per second up to burst
CREATE FUNCTION cg_refilled(tokens float8, updated_at timestamptz, burst float8, rate float8)
RETURNS float8 LANGUAGE sql STABLE AS $$
    SELECT least(burst, tokens + rate * extract(epoch FROM clock_timestamp() - updated_at))
$$;
