-- Proposed matching plans, kept so that the plan a person reviewed is the plan committed
-- (runMatching(mode: COMMIT, planKey: ...)) and a retried commit books it once.
CREATE TABLE matching_plans (
    key text PRIMARY KEY,
    proposed_by text NOT NULL,
    referral_ids bigint[] NOT NULL,
    slot_ids bigint[] NOT NULL CHECK (cardinality(slot_ids) = cardinality(referral_ids)),
    shown jsonb NOT NULL,  -- what proposing answered: the summary and the listed explanations
    proposed_at timestamptz NOT NULL DEFAULT now()
);
