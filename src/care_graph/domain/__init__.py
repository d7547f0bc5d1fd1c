"""Domain rules: waiting-time clocks, referral lifecycle, booking. No GraphQL, no HTTP here."""
