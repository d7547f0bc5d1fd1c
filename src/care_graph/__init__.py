"""care_graph: an open booking-and-referral backbone for health systems."""

__version__ = "0.1.0"
