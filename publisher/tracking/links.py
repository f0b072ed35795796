"""A digest's links as signed, counted redirects (``[tracking] clicks = "aggregate"``).

The digest's HTML is rendered once per digest and then personalized by joining bytes
(:mod:`publisher.mail.render`), so the links are rewritten once, in that one HTML, to
``<site>c/<digest>/<n>?u=<target>&s=<signature>``: ``n`` numbers the digest's distinct
targets in order, and the signature (HMAC, :class:`subscribers.tokens.Tokens`, a purpose
of its own) covers the digest, ``n`` and the target.  The redirect follows only a
target it signed itself, so it is never an open redirect; and as the link carries its
target, following it needs no read from the store, only the count's one write.

Rewritten: every ``http(s)`` link of the HTML part.  Left as they are: the personal
links (unsubscribe, preferences; still sentinels when this runs, and a link holding a
personal value must not be signed), ``mailto:`` and anything else not ``http(s)``.
The plain-text part is not rewritten: its reader sees and follows the address as it
is written, and an opaque redirect in its place reads like a phishing link.
"""

from __future__ import annotations

import html
import hmac
import re
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from publisher import urls
from publisher.config import Settings

if TYPE_CHECKING:  # the signer's library loads when a digest's links are signed, not with every command
    from subscribers.tokens import Tokens

# An <a> start tag up to its href's value, as css-inline serializes HTML: lower-case names,
# every value in double quotes (a quoted value is consumed whole, so an "href=" inside
# another attribute's value is never taken for the attribute).
_HREF = re.compile(r'(<a\s(?:[^>"]|"[^"]*")*?(?<=\s)href=")([^"]*)(")')
_FOLLOWED = ("http", "https")


def click_links(settings: Settings, tokens: Tokens) -> ClickLinks | None:
    """The rewriter digests are rendered with, or None when ``[tracking] clicks`` is off."""
    return ClickLinks(tokens, settings.site.url) if settings.tracking.clicks == "aggregate" else None


class ClickLinks:
    """Signs a digest's links into redirects on the site at ``site_url``, and checks them back."""

    def __init__(self, tokens: Tokens, site_url: str) -> None:
        from subscribers.tokens import Purpose

        self._tokens = tokens
        self._purpose = Purpose.CLICK
        self._site_url = site_url

    def rewrite(self, html_part: str, *, digest_id: str, keep: str) -> str:
        """``html_part`` with each ``http(s)`` link through its counted redirect.

        A link whose address holds ``keep`` (the render's nonce, in every personal
        value's sentinel) stays as it is.  The same target twice (a title and its
        "Read more") is one link, ``n``, counted together.
        """
        numbers: dict[str, int] = {}

        def redirect(match: re.Match[str]) -> str:
            target = html.unescape(match.group(2))
            if keep in target or urlsplit(target).scheme.lower() not in _FOLLOWED:
                return match.group(0)
            n = numbers.setdefault(target, len(numbers) + 1)
            return match.group(1) + html.escape(self.url(digest_id, n, target), quote=True) + match.group(3)

        return _HREF.sub(redirect, html_part)

    def url(self, digest_id: str, n: int, target: str) -> str:
        """The redirect to ``target``, the ``n``-th link of digest ``digest_id``."""
        query = urlencode({"u": target, "s": self._signature(digest_id, n, target)})
        return f"{urls.CLICK.url(self._site_url, digest_id=digest_id, n=str(n))}?{query}"

    def genuine(self, digest_id: str, n: int, target: str, signature: str) -> bool:
        """Whether ``signature`` is ours for this link and the target is one a browser may be sent to."""
        expected = self._signature(digest_id, n, target)
        return hmac.compare_digest(expected, signature) and urlsplit(target).scheme.lower() in _FOLLOWED

    def _signature(self, digest_id: str, n: int, target: str) -> str:
        return self._tokens.signature(self._purpose, f"{digest_id}/{n:d}/{target}".encode())
