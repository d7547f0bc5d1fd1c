-- Indexes for the read API's keyset pages: each ordering's (key, id), so a page is an ordered
-- index scan that stops after first + 1 rows instead of a sort of the whole list.
CREATE INDEX referrals_breach_idx ON referrals (breach_date, id);
CREATE INDEX referrals_clock_idx ON referrals (clock_start, id);
CREATE INDEX referrals_received_idx ON referrals (received_at, id);
CREATE INDEX slots_time_idx ON slots (starts_at, id);
CREATE INDEX patients_name_idx ON patients ((family_name || ' ' || given_name), id);
CREATE INDEX staff_name_idx ON staff ((family_name || ' ' || given_name), id);

-- Candidate slots: free slots of one service at the few sites within a patient's reach.
CREATE INDEX slots_free_by_service_site_idx ON slots (service_id, site_id, starts_at, id)
    WHERE status = 'free';
-- It supersedes the by-service index: one index fewer to maintain on every slot write.
DROP INDEX slots_free_by_service_idx;
