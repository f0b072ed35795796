"""Digests: which articles go to whom (plan.py), and when (cadence.py)."""
