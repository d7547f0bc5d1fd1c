"""The waiting-list simulator: a region's list, day by day over a horizon, under a booking
policy and a what-if scenario — apart from the database, which it reads once (``snapshot``)
and never writes.

- ``world``: what a simulation starts from, and the assumptions it makes;
- ``timeline``: one replication's draws (capacity, arrivals, each booking's fate, edges);
- ``engine``: the days themselves, under first-come-first-served, priority-greedy or
  care_graph's matcher kept warm;
- ``scenarios``: what-ifs as data; ``study``: replications with common random numbers and
  confidence intervals; ``summary``: a study on one screen.
"""
