"""The dashboard: demand against capacity, breaches ahead, unmet demand by site and the
waiting list under a scenario, as one server-rendered page (docs/dashboard.md)."""
