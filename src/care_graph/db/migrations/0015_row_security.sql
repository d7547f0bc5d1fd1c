-- PostgreSQL as the second wall. The API runs as care_graph_app, which owns nothing: the
-- migrating role owns the schema. Rows with patient data are under row-level security, keyed
-- on settings the API sets in each transaction (db/row_security.py):
--   care_graph.rows     'viewer': only the caller's rows; 'all': domain services acting
--                       across patients (offers, sweeps, booking rules); unset: no rows
--   care_graph.role     the caller's role (auth.Role)
--   care_graph.subject  the caller's token subject
--   care_graph.patient  a patient caller's own patient id
-- The rules mirror api/policy.py ROW_FILTERS, which the compiled SQL keeps (they make it fast);
-- tests/test_row_security.py runs the read corpus with those filters switched off and proves
-- these policies alone return exactly the caller's rows. The audit trail is append-only for
-- the API: INSERT and SELECT, never UPDATE, DELETE or TRUNCATE.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'care_graph_app') THEN
        CREATE ROLE care_graph_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO care_graph_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO care_graph_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO care_graph_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM care_graph_app;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM care_graph_app;
-- tables and sequences later migrations create are the API's to use the same way
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO care_graph_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO care_graph_app;

-- The policies read each setting through a scalar subquery, (SELECT cg_...()), which PostgreSQL
-- evaluates once per statement rather than once per row.
CREATE FUNCTION cg_sees_every_row() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('care_graph.rows', true) = 'all'
        OR (current_setting('care_graph.rows', true) = 'viewer'
            AND current_setting('care_graph.role', true) IN ('clinician', 'scheduler', 'admin')),
        false)
$$;
CREATE FUNCTION cg_viewer_role() RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN current_setting('care_graph.rows', true) = 'viewer'
               THEN current_setting('care_graph.role', true) END $$;
CREATE FUNCTION cg_viewer_subject() RETURNS text LANGUAGE sql STABLE AS
$$ SELECT current_setting('care_graph.subject', true) $$;
CREATE FUNCTION cg_viewer_patient() RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('care_graph.patient', true), '')::bigint $$;

ALTER TABLE patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE referrals ENABLE ROW LEVEL SECURITY;
ALTER TABLE appointments ENABLE ROW LEVEL SECURITY;
ALTER TABLE referral_clock_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;

CREATE POLICY viewer_reads ON referrals FOR SELECT TO care_graph_app USING (
    (SELECT cg_sees_every_row()) OR CASE (SELECT cg_viewer_role())
        WHEN 'patient' THEN patient_id = (SELECT cg_viewer_patient())
        WHEN 'referrer' THEN referrer_subject = (SELECT cg_viewer_subject())
        ELSE false END
);

CREATE POLICY viewer_reads ON patients FOR SELECT TO care_graph_app USING (
    (SELECT cg_sees_every_row()) OR CASE (SELECT cg_viewer_role())
        WHEN 'patient' THEN id = (SELECT cg_viewer_patient())
        WHEN 'referrer' THEN registered_by = (SELECT cg_viewer_subject())
            OR EXISTS (SELECT 1 FROM referrals own WHERE own.patient_id = patients.id
                       AND own.referrer_subject = (SELECT cg_viewer_subject()))
        ELSE false END
);

-- a record that belongs to a referral is read by whoever may read that referral
CREATE POLICY viewer_reads ON appointments FOR SELECT TO care_graph_app USING (
    (SELECT cg_sees_every_row()) OR referral_id IN (SELECT id FROM referrals)
);
CREATE POLICY viewer_reads ON referral_clock_events FOR SELECT TO care_graph_app USING (
    (SELECT cg_sees_every_row()) OR referral_id IN (SELECT id FROM referrals)
);

-- the audit trail: the domain services, and administrators reading for a client
CREATE POLICY viewer_reads ON audit_events FOR SELECT TO care_graph_app USING (
    CASE WHEN (SELECT cg_viewer_role()) IS NULL THEN (SELECT cg_sees_every_row())
         ELSE (SELECT cg_viewer_role()) = 'admin' END
);

CREATE POLICY viewer_reads ON idempotency_keys FOR SELECT TO care_graph_app USING (
    (SELECT cg_sees_every_row()) OR actor = (SELECT cg_viewer_subject())
);

-- writes are the domain services' (they check the rules first); row security bounds reads
CREATE POLICY domain_writes ON patients FOR INSERT TO care_graph_app WITH CHECK (true);
CREATE POLICY domain_updates ON patients FOR UPDATE TO care_graph_app USING (true);
CREATE POLICY domain_deletes ON patients FOR DELETE TO care_graph_app USING (true);
CREATE POLICY domain_writes ON referrals FOR INSERT TO care_graph_app WITH CHECK (true);
CREATE POLICY domain_updates ON referrals FOR UPDATE TO care_graph_app USING (true);
CREATE POLICY domain_deletes ON referrals FOR DELETE TO care_graph_app USING (true);
CREATE POLICY domain_writes ON appointments FOR INSERT TO care_graph_app WITH CHECK (true);
CREATE POLICY domain_updates ON appointments FOR UPDATE TO care_graph_app USING (true);
CREATE POLICY domain_deletes ON appointments FOR DELETE TO care_graph_app USING (true);
CREATE POLICY domain_writes ON referral_clock_events FOR INSERT TO care_graph_app
    WITH CHECK (true);
CREATE POLICY domain_updates ON referral_clock_events FOR UPDATE TO care_graph_app USING (true);
CREATE POLICY domain_deletes ON referral_clock_events FOR DELETE TO care_graph_app USING (true);
CREATE POLICY domain_writes ON audit_events FOR INSERT TO care_graph_app WITH CHECK (true);
CREATE POLICY domain_writes ON idempotency_keys FOR INSERT TO care_graph_app WITH CHECK (true);
CREATE POLICY domain_updates ON idempotency_keys FOR UPDATE TO care_graph_app USING (true);
CREATE POLICY domain_deletes ON idempotency_keys FOR DELETE TO care_graph_app USING (true);
