"""The operator dashboard at ``/admin/``: accounts, sign-in, sessions, roles, the audit log, its figures.

``model`` (roles, operators, sessions), ``passwords`` (Argon2id and the policy),
``totp`` (RFC 6238 codes), ``store`` (the only SQL on the three tables) and
``service`` (the rules: lockout, expiry, the last admin, one audit row per action),
``figures`` (what the overview shows, from the counts of :mod:`publisher.store.aggregates`).
The web pages are :mod:`publisher.web.admin`; the command is ``publisher operators``.
"""
