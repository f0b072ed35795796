"""Delivery: the ledger of messages to send, and everything that sends them (see engine.py)."""
