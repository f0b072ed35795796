"""The settings page (viewers and up, read only): the effective config with every secret
masked, the DKIM record to publish, health and readiness, and the webhook outbox.

Each part is what another front end already shows, from the same function: the config
as :mod:`publisher.admin.effective_config` masks it, the DKIM record as ``publisher dkim
keygen`` prints it, the checks of ``/readyz`` (:func:`publisher.web.health.readiness`),
the outbox of ``publisher status`` with its counts capped and its events paged by key.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from publisher import secrets, urls
from publisher.admin.effective_config import effective_config, referenced_variables, shown
from publisher.admin.model import Role, Session
from publisher.app import Publisher
from publisher.web.admin import gate
from publisher.web.api.http import TOKEN_ENV
from publisher.web.health import readiness
from publisher.web.keys import PUBLISHER

OUTBOX_PAGE = 50  # owed webhook events per page
OUTBOX_CAP = 10_000  # an endpoint's counts stop here ("more than")
MAX_SEQ_DIGITS = 18


def secret_variables(publisher: Publisher) -> list[tuple[str, str, bool]]:
    """(environment variable, what it holds, whether it is set) of every secret kept outside
    the config: the two the daemon always reads, and each one a ``*_env`` key names."""
    fixed = [(secrets.ENV_NAME, "the key that signs links and form tokens"), (TOKEN_ENV, "the JSON API's token")]
    named = [(name, f"named by {key}") for key, name in referenced_variables(publisher.settings)]
    return [(name, what, bool(os.environ.get(name))) for name, what in fixed + named]


def known_secrets(publisher: Publisher) -> list[str]:
    """The values of the secrets in use, masked wherever they appear on the page."""
    values = [os.environ.get(name, "") for name, _, _ in secret_variables(publisher)]
    return [value for value in [*values, publisher.tokens.secret_key] if value]


def _dkim_record(publisher: Publisher) -> dict[str, str]:
    """The TXT record of ``[dkim]``'s key, as ``publisher dkim keygen`` prints it (the public
    half only); or why there is none.  The key file's reader never puts its content in a message."""
    if not publisher.settings.dkim.enabled:
        return {"problem": "DKIM signing is off: [dkim] selector, domain and key_file are not all set."}
    try:
        signer = publisher.dkim
    except ValueError as exc:  # DkimError: the file or the names can't be used
        return {"problem": str(exc)}
    assert signer is not None  # enabled
    from publisher.mail.dkim_keys import zone_line  # the crypto library, for this part only

    value = signer.dns_record()
    return {"name": signer.dns_name, "value": value, "zone": zone_line(signer.selector, signer.domain, value),
            "algorithm": signer.algorithm}


def endpoint_ref(url: str) -> str:
    """How a page link names an endpoint: a digest of its URL, never the URL (whose path or
    query may hold a token, and a link ends up in histories and logs)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def _after(request: web.Request, endpoints: list[str]) -> tuple[str, int] | None:
    """The outbox page's start (``?endpoint=REF&after=SEQ``), checked: 400 for anything else."""
    ref, seq = request.query.get("endpoint"), request.query.get("after")
    if ref is None and seq is None:
        return None
    if ref is None or seq is None or not (seq.isdigit() and len(seq) <= MAX_SEQ_DIGITS):
        raise web.HTTPBadRequest(reason="endpoint and after (an event number) go together")
    endpoint = next((url for url in endpoints if endpoint_ref(url) == ref), None)
    if endpoint is None:
        raise web.HTTPBadRequest(reason="endpoint must name one of the webhook endpoints")
    return endpoint, int(seq)


@gate.guarded(Role.VIEWER)
async def settings_page(request: web.Request, session: Session) -> web.StreamResponse:
    """A handful of small reads: the counts of the outbox stop at OUTBOX_CAP, and its
    events come a page at a time along the deliveries' primary key."""
    publisher = request.app[PUBLISHER]
    endpoints = await publisher.webhooks.status(OUTBOX_CAP)
    after = _after(request, [e.url for e in endpoints])
    owed = await publisher.webhooks.owed_page(OUTBOX_PAGE + 1, after)
    following = owed[OUTBOX_PAGE - 1] if len(owed) > OUTBOX_PAGE else None
    known = known_secrets(publisher)
    health = await readiness(publisher)
    context: dict[str, Any] = {
        "page_title": "Settings",
        "config_file": str(publisher.settings.source) if publisher.settings.source else "none (defaults and environment only)",
        "config": effective_config(publisher.settings, known),
        "variables": secret_variables(publisher),
        "dkim": _dkim_record(publisher),
        "health": health,
        "endpoints": endpoints, "outbox_cap": OUTBOX_CAP,
        "owed": owed[:OUTBOX_PAGE], "paged": after is not None,
        "next_page": None if following is None else urls.ADMIN_SETTINGS.under(gate.base(request)) + "?"
        + urlencode({"endpoint": endpoint_ref(following.endpoint), "after": following.event_seq}) + "#outbox",
        # Text from outside (URLs, error messages) passes here before it is shown.
        "mask": lambda text: shown(text, False, known) if text else "",
    }
    return gate.page(request, "settings.html", context, session)


def add_settings_routes(app: web.Application) -> None:
    app.router.add_get(urls.ADMIN_SETTINGS.path, settings_page)
