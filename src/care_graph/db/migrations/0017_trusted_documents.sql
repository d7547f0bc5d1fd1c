-- Trusted documents: the operations production serves, by the sha256 of their text
-- (`care-graph documents add FILE…`). The API reads them and never adds one itself.
CREATE TABLE trusted_documents (
    sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    document text NOT NULL,
    source text NOT NULL,  -- the file it came from, as given
    added_at timestamptz NOT NULL DEFAULT now()
);
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON trusted_documents FROM care_graph_app;
