-- A referral moves through its lifecycle by changing its status (accepted, then booked, then
-- completed). Make each move a heap-only (HOT) update, which writes no index entries: no index
-- depends on status any more (a worklist in breach order reads referrals_breach_idx and checks
-- the status on the row; a service's list reads the service index the same way), and pages
-- keep room for each referral's next versions. Rows already stored get the room when the
-- table is next rewritten (VACUUM FULL); rows loaded from now on get it at once.
ALTER TABLE referrals SET (fillfactor = 60);
DROP INDEX referrals_worklist_idx;
DROP INDEX referrals_service_idx;
CREATE INDEX referrals_service_idx ON referrals (to_service_id, breach_date, id);
