-- Which referral a slot is held for, so that a referral already holding an offer is left out
-- of matching and of further offers. Partial: only held slots have an entry, and a slot's
-- booking or release (NULL before and after) stays a heap-only update.
CREATE INDEX slots_held_for_idx ON slots (held_for_referral_id)
    WHERE held_for_referral_id IS NOT NULL;
