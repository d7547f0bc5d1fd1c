-- Where a referral's patient can get to: a box around their home as wide as the referral's
-- maximum travel, kept on the referral, so that a freed slot's candidates are the referrals
-- whose box holds the slot's site — found through an index — rather than every referral of
-- the service measured one by one. The exact great-circle check still follows.
CREATE FUNCTION reach_box(latitude float8, longitude float8, max_km float8)
RETURNS box LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- a degree of latitude is at least 111.19 km of great circle; a degree of longitude at
    -- least that times the cosine of the box's most poleward latitude (slightly widened)
    SELECT CASE
        WHEN max_km IS NULL OR latitude IS NULL OR abs(latitude) + max_km / 111.19 >= 89
            OR abs(longitude) + max_km / 111.19 / cos(radians(abs(latitude) + max_km / 111.19))
               * 1.0001 >= 180
        THEN box(point(-180, -90), point(180, 90))
        ELSE box(
            point(longitude - max_km / 111.19 / cos(radians(abs(latitude) + max_km / 111.19))
                  * 1.0001 - 1e-6,
                  latitude - max_km / 111.19 - 1e-6),
            point(longitude + max_km / 111.19 / cos(radians(abs(latitude) + max_km / 111.19))
                  * 1.0001 + 1e-6,
                  latitude + max_km / 111.19 + 1e-6))
    END
$$;

-- set by the triggers below on every insert and every move, never by the application
ALTER TABLE referrals ADD COLUMN reach box;
UPDATE referrals r SET reach = reach_box(p.latitude, p.longitude, r.max_travel_km)
FROM patients p WHERE p.id = r.patient_id;

CREATE FUNCTION referral_reach() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- no such patient: everywhere, and the foreign key refuses the row as before
    NEW.reach := coalesce(
        (SELECT reach_box(p.latitude, p.longitude, NEW.max_travel_km)
         FROM patients p WHERE p.id = NEW.patient_id),
        box(point(-180, -90), point(180, 90)));
    RETURN NEW;
END $$;
CREATE TRIGGER referrals_reach BEFORE INSERT OR UPDATE OF patient_id, max_travel_km
    ON referrals FOR EACH ROW EXECUTE FUNCTION referral_reach();

CREATE FUNCTION patient_reach() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE referrals SET reach = reach_box(NEW.latitude, NEW.longitude, max_travel_km)
    WHERE patient_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER patients_reach AFTER UPDATE OF latitude, longitude ON patients FOR EACH ROW
    WHEN (OLD.latitude IS DISTINCT FROM NEW.latitude OR OLD.longitude IS DISTINCT FROM NEW.longitude)
    EXECUTE FUNCTION patient_reach();

-- a status change touches neither column, so booking a referral stays a heap-only update
CREATE INDEX referrals_reach_idx ON referrals USING gist (to_service_id, reach);
