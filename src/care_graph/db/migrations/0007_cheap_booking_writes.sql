-- Booking a slot changes only its status and hold. Make that a heap-only (HOT) update, which
-- writes no index entries and so skips the staff-overlap exclusion check that an unchanged
-- staff member and time cannot fail:
--   * no index may depend on status, so the overlap constraint's predicate reads a stored
--     column that booking never changes, and free slots are found through an index of all
--     slots of a service at a site (the status is checked on the row);
--   * pages keep half their room free, so each slot's next version fits beside it.
ALTER TABLE slots SET (fillfactor = 50);
ALTER TABLE slots ADD COLUMN voided boolean
    GENERATED ALWAYS AS (status = 'entered-in-error') STORED;
ALTER TABLE slots DROP CONSTRAINT slots_no_staff_overlap;
ALTER TABLE slots ADD CONSTRAINT slots_no_staff_overlap
    EXCLUDE USING gist (staff_id WITH =, during WITH &&) WHERE (NOT voided);
DROP INDEX slots_free_by_service_site_idx;
CREATE INDEX slots_service_site_idx ON slots (service_id, site_id, starts_at, id);

-- Check that a booking's slot offers the referral's service once per statement, over all the
-- rows it wrote, instead of once per row: a committed plan inserts thousands at a time.
DROP TRIGGER appointments_service_matches ON appointments;
CREATE OR REPLACE FUNCTION appointments_check_service() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    mismatch record;
BEGIN
    SELECT c.slot_id, c.referral_id INTO mismatch FROM checked c
    WHERE NOT EXISTS (
        SELECT 1 FROM slots s JOIN referrals r ON r.id = c.referral_id
        WHERE s.id = c.slot_id AND s.service_id = r.to_service_id)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'slot % does not offer the service of referral %',
            mismatch.slot_id, mismatch.referral_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'appointments_service_matches';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER appointments_service_matches
    AFTER INSERT ON appointments REFERENCING NEW TABLE AS checked
    FOR EACH STATEMENT EXECUTE FUNCTION appointments_check_service();
CREATE TRIGGER appointments_service_matches_on_update
    AFTER UPDATE ON appointments REFERENCING NEW TABLE AS checked
    FOR EACH STATEMENT EXECUTE FUNCTION appointments_check_service();
