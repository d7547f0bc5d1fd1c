-- Helpers the GraphQL read path uses to shape values in SQL exactly as the API contract says,
-- so that JSON built by PostgreSQL needs no post-processing in Python.

-- An opaque global ID: base64 of "Type:primary key".
CREATE FUNCTION cg_global_id(type_name text, key bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT translate(encode(convert_to(type_name || ':' || key, 'UTF8'), 'base64'), E'\n', '')
$$;

-- A keyset cursor: base64 of the JSON array [sort key, id], sort key as text.
CREATE FUNCTION cg_cursor(sort_key text, key bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT translate(encode(convert_to(json_build_array(sort_key, key)::text, 'UTF8'), 'base64'),
                     E'\n', '')
$$;

-- A GraphQL Float as JSON, written the way the API's own JSON encoder writes it (51.0, not 51).
CREATE FUNCTION cg_float(value float8) RETURNS json
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value IS NULL THEN 'null'::json
        WHEN value = trunc(value) AND abs(value) < 1e15 THEN (trunc(value)::bigint || '.0')::json
        ELSE to_json(value)
    END
$$;

-- A FHIR code (busy-tentative) as a GraphQL enum name (BUSY_TENTATIVE).
CREATE FUNCTION cg_enum(code text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT upper(translate(code, '-', '_'))
$$;

-- A GraphQL DateTime as JSON, written as the API's own encoder writes it: UTC with "+00:00",
-- six fractional digits when there is a fraction and none when there is not.
CREATE FUNCTION cg_timestamp(value timestamptz) RETURNS json
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value IS NULL THEN 'null'::json ELSE to_json(
        to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN date_part('microseconds', value)::bigint % 1000000 = 0 THEN ''
                ELSE to_char(value AT TIME ZONE 'UTC', '.US') END
        || '+00:00') END
$$;
