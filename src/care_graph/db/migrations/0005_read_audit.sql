-- Reads of patient-identifiable records leave an audit event in the statement that reads them:
-- the read API wraps each such object's JSON in this function, which records who read which
-- record and passes the JSON through. VOLATILE, so PostgreSQL calls it once per object built.
CREATE FUNCTION cg_audited_read(record_type text, record_id bigint, actor text,
                                actor_role text, body json) RETURNS json
LANGUAGE sql VOLATILE AS $$
    INSERT INTO audit_events (actor, actor_role, operation, record_type, record_id)
    VALUES (actor, actor_role, 'READ', record_type, record_id);
    SELECT body;
$$;
