-- Who registered a patient, so that a referrer can read the record they have just created
-- before any referral links them to it.
ALTER TABLE patients ADD COLUMN registered_by text;
CREATE INDEX patients_registered_by_idx ON patients (registered_by, id)
    WHERE registered_by IS NOT NULL;
