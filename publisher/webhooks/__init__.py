"""Outgoing webhooks: events recorded in a durable outbox, POSTed signed to the endpoints
of ``[[webhooks]]`` until each acknowledges them.

``model`` names the event types; ``events`` records an event in the transaction of the
change it reports (so none is lost or invented); ``outbox`` holds every query on the
outbox tables (endpoints, claims, outcomes, the status); ``dispatch`` sends what is due.
"""
