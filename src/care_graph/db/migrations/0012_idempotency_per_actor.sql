-- An idempotency key belongs to the actor that sent it: one actor's key can neither replay
-- nor block another's request (a patient reusing a clerk's example key is no clash).
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (actor, key);
