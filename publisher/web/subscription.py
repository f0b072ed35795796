"""The subscription pages: sign up, confirm, preferences, unsubscribe.

Every page that changes something is a POST with a CSRF token, except the one the
standards dictate: RFC 8058's one-click POST from a mailbox provider unsubscribes with
no cookie and no page in between.  Mail security scanners fetch (HEAD and GET) every
link in a message, so the emailed confirmation link only shows a page whose single
button confirms.  Links carry signed tokens (subscriber id + address fingerprint),
never the address.

No enumeration: the answer to ``POST /subscribe`` (and to the "email me my
preferences link" form) is the same page, byte for byte, whether or not the address
is known; what differs is only which email is sent, and that happens in the
background.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from publisher import clock, i18n, urls
from publisher.app import Publisher
from publisher.content.slug import slugify
from publisher.i18n import N_
from publisher.web import forms
from publisher.web.keys import PUBLISHER
from publisher.web.pages import CSRF, render
from publisher.web.ratelimit import RateLimits, client_address
from publisher.web.zones import Choice, zone_choices
from subscribers.model import WEEKDAYS, Cadence, Preferences, Status, Subscriber
from subscribers.tokens import Claim, ExpiredToken, InvalidToken, Purpose
from subscribers.validation import (
    MAX_EMAIL,
    MAX_NAME,
    SubscriberError,
    check_cadence,
    check_name,
    check_send_hour,
    check_send_weekday,
    check_timezone,
    check_topics,
    email_hash,
    normalize_email,
)

LIMITS = web.AppKey("rate_limits", RateLimits)


async def topic_choices(publisher: Publisher) -> list[Choice]:
    """The topics as checkboxes: the tag as the value, its ``[site.topic_names]`` name as the label.

    Names are matched by slug, as topics are (``check_topics``), so ``North-Korea`` in
    the config names the tag ``north-korea``; one box per slug, sorted by label.
    """
    names = {slugify(tag): name for tag, name in publisher.settings.site.topic_names.items()}
    choices: dict[str, Choice] = {}
    for topic in await publisher.subscribers.known_topics():
        choices.setdefault(slugify(topic), (topic, names.get(slugify(topic), topic)))
    return sorted(choices.values(), key=lambda choice: choice[1].casefold())


def _require_csrf(request: web.Request, form: forms.Form) -> None:
    if not forms.same_origin(request, request.app[PUBLISHER].settings.site.url):
        raise web.HTTPForbidden(reason="Form sent from another site")
    if not request.app[CSRF].valid(request, form):
        raise web.HTTPForbidden(reason="Invalid form token")


async def _limit(request: web.Request, action: str, key: str | None) -> None:
    publisher = request.app[PUBLISHER]
    await request.app[LIMITS].check(action, client_address(request, publisher.settings.server), key)


def _check_inbox(request: web.Request) -> web.Response:
    return render(request, "check_inbox.html")


# --- sign up -------------------------------------------------------------------------


async def _signup_page(request: web.Request, values: dict[str, Any], errors: dict[str, str], status: int = 200) -> web.Response:
    publisher = request.app[PUBLISHER]
    context = {
        "values": values,
        "errors": _translated(request, errors),
        "topics": await topic_choices(publisher),
        "cadences": list(Cadence),
        "limits": {"email": MAX_EMAIL, "name": MAX_NAME},
    }
    return render(request, "subscribe.html", context, status=status)


async def subscribe_form(request: web.Request) -> web.Response:
    default = request.app[PUBLISHER].settings.subscribers.default_cadence
    return await _signup_page(request, {"email": "", "name": "", "cadence": default, "topics": []}, {})


async def subscribe(request: web.Request) -> web.Response:
    publisher = request.app[PUBLISHER]
    form = await forms.read_form(request)
    _require_csrf(request, form)
    values = {
        "email": forms.text(form, "email", MAX_EMAIL + 50),
        "name": forms.text(form, "name", MAX_NAME + 50),
        "cadence": forms.text(form, "cadence", 20) or publisher.settings.subscribers.default_cadence,
        "topics": forms.texts(form, "topics"),
    }
    errors: dict[str, str] = {}
    address = _checked(errors, "email", normalize_email, values["email"])
    await _limit(request, "subscribe", email_hash(address) if address else None)
    if forms.text(form, forms.HONEYPOT):
        return _check_inbox(request)  # a bot: answer as if all went well, and do nothing
    known = await publisher.subscribers.known_topics()
    name = _checked(errors, "name", check_name, values["name"])
    cadence = _checked(errors, "cadence", check_cadence, values["cadence"])
    topics = _checked(errors, "topics", lambda t: check_topics(t, known), values["topics"])
    if errors:
        return await _signup_page(request, values, errors, status=422)
    prefs = Preferences(cadence=cadence, topics=topics, timezone=publisher.settings.digest.timezone)
    # Stored and answered by email after this response (no enumeration by timing).
    publisher.subscribers.sign_up_later(address, name=name, prefs=prefs, what="storing a sign-up")
    return _check_inbox(request)


def _checked(errors: dict[str, str], name: str, check: Callable[[Any], Any], value: Any) -> Any:
    """``check(value)``, or None with its SubscriberError filed under ``name`` (its reader's message,
    untranslated: :func:`_translated` makes the page's words of it)."""
    try:
        return check(value)
    except SubscriberError as exc:
        errors[name] = exc.reader or N_("Please choose one of the options offered.")
        return None


def _translated(request: web.Request, errors: dict[str, str]) -> dict[str, str]:
    """The form's errors in the site's language.  A field without a reader's message of its own
    is a choice among controls (cadence, topics, time zone, hour, day): only a tampered
    form gets it wrong, and the options are on the page."""
    t = i18n.Translator(request.app[PUBLISHER].settings.site.language)
    return {name: t.gettext(message, max_email=MAX_EMAIL, max_name=MAX_NAME) for name, message in errors.items()}


# --- links from emails ---------------------------------------------------------------


def _link_problem(request: web.Request, *, expired: bool = False, token: str = "", status: int = 400) -> web.Response:
    return render(request, "link_problem.html", {"expired": expired, "resend_token": token}, status=status)


async def _holder(request: web.Request, claim: Claim) -> Subscriber | None:
    """The subscriber a genuine token names, if they still exist and still own the address."""
    return await request.app[PUBLISHER].subscribers.holder(claim)


def _read(request: web.Request, purpose: Purpose, max_age: float | None = None) -> Claim:
    """The claim of the token in the URL; InvalidToken / ExpiredToken as the token is."""
    return request.app[PUBLISHER].tokens.read(purpose, request.match_info["token"], max_age=max_age)


def _path(request: web.Request, purpose: Purpose, subscriber: Subscriber) -> str:
    """The site-relative link to ``purpose``'s page for ``subscriber``."""
    publisher = request.app[PUBLISHER]
    return publisher.tokens.link(urls.base_path(publisher.settings.site.url), purpose, subscriber.id, subscriber.email)


async def _confirmable(request: web.Request) -> Subscriber | web.Response:
    """The holder of the URL's confirmation token, or the page that explains why it doesn't work."""
    publisher = request.app[PUBLISHER]
    try:
        claim = _read(request, Purpose.CONFIRM, publisher.subscribers.confirm_max_age)
    except ExpiredToken:
        return _link_problem(request, expired=True, token=request.match_info["token"], status=410)
    except InvalidToken:
        return _link_problem(request)
    subscriber = await _holder(request, claim)
    if subscriber is None or subscriber.status not in (Status.PENDING, Status.ACTIVE):
        # They left after this link was sent: an old link does not bring them back.
        return _link_problem(request)
    return subscriber


def _confirmed(request: web.Request, subscriber: Subscriber) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(_path(request, Purpose.PREFERENCES, subscriber) + "?confirmed=1")


async def confirm_page(request: web.Request) -> web.StreamResponse:
    """The emailed link (GET, and HEAD from scanners): a page with the button, nothing changes.

    An address that is confirmed already goes straight to its preferences.
    """
    subscriber = await _confirmable(request)
    if isinstance(subscriber, web.Response):
        return subscriber
    if subscriber.status == Status.ACTIVE:
        raise _confirmed(request, subscriber)
    return render(request, "confirm.html", {"subscriber": subscriber})


async def confirm(request: web.Request) -> web.StreamResponse:
    """The confirmation page's button: activate, then show the new subscriber their preferences."""
    publisher = request.app[PUBLISHER]
    form = await forms.read_form(request)
    _require_csrf(request, form)
    subscriber = await _confirmable(request)
    if isinstance(subscriber, web.Response):
        return subscriber
    confirmed = await publisher.subscribers.confirm(subscriber.id)
    if confirmed is None or confirmed.status != Status.ACTIVE:
        return _link_problem(request)  # they left between the page and the button
    raise _confirmed(request, confirmed)


async def resend_confirmation(request: web.Request) -> web.Response:
    """A fresh confirmation link for the holder of an expired one."""
    publisher = request.app[PUBLISHER]
    form = await forms.read_form(request)
    _require_csrf(request, form)
    try:
        claim = publisher.tokens.read(Purpose.CONFIRM, forms.text(form, "token", 500))
    except ExpiredToken as expired:
        claim = expired.claim
    except InvalidToken:
        return _link_problem(request)
    await _limit(request, "resend", f"subscriber:{claim.subscriber_id}")
    subscriber = await _holder(request, claim)
    if subscriber is not None and subscriber.status == Status.PENDING:
        publisher.subscribers.confirm_again(subscriber)
    return _check_inbox(request)


# --- preferences ---------------------------------------------------------------------


async def _preferences_page(
    request: web.Request, subscriber: Subscriber, *, values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None, status: int = 200,
) -> web.Response:
    publisher = request.app[PUBLISHER]
    prefs = subscriber.preferences
    context = {
        "subscriber": subscriber,
        "values": values or {
            "name": subscriber.name, "cadence": prefs.cadence.value, "topics": list(prefs.topics),
            "timezone": prefs.timezone, "send_hour": "" if prefs.send_hour is None else str(prefs.send_hour),
            "send_weekday": prefs.send_weekday or "",
        },
        "errors": _translated(request, errors or {}),
        "topics": await topic_choices(publisher),
        "cadences": list(Cadence),
        "timezones": zone_choices(prefs.timezone, clock.now()),
        "default_hour": publisher.settings.digest.daily_at.hour,
        "weekdays": WEEKDAYS,
        "default_weekday": publisher.settings.digest.weekly_day,
        "unsubscribe_path": _path(request, Purpose.UNSUBSCRIBE, subscriber),
        "saved": request.query.get("saved") == "1",
        "confirmed": request.query.get("confirmed") == "1",
        "limits": {"name": MAX_NAME},
    }
    return render(request, "preferences.html", context, status=status)


async def _linked_subscriber(request: web.Request, purpose: Purpose) -> Subscriber | web.Response:
    """The holder of the link's token, or the page that explains why the link doesn't work."""
    try:
        subscriber = await _holder(request, _read(request, purpose))
    except InvalidToken:
        return _link_problem(request)
    return subscriber if subscriber is not None else _link_problem(request, status=404)


async def preferences(request: web.Request) -> web.Response:
    subscriber = await _linked_subscriber(request, Purpose.PREFERENCES)
    if isinstance(subscriber, web.Response):
        return subscriber
    return await _preferences_page(request, subscriber)


async def save_preferences(request: web.Request) -> web.StreamResponse:
    publisher = request.app[PUBLISHER]
    form = await forms.read_form(request)
    _require_csrf(request, form)
    subscriber = await _linked_subscriber(request, Purpose.PREFERENCES)
    if isinstance(subscriber, web.Response):
        return subscriber
    if forms.text(form, "action", 20) == "resubscribe" or subscriber.status not in (Status.ACTIVE, Status.PENDING):
        # Coming back is a new double opt-in, whoever holds this (possibly forwarded) link.
        await _limit(request, "resubscribe", email_hash(subscriber.email))
        publisher.subscribers.sign_up_later(
            subscriber.email, name=subscriber.name, prefs=subscriber.preferences,
            what=f"storing the return of subscriber {subscriber.id}",
        )
        return _check_inbox(request)
    values = {
        "name": forms.text(form, "name", MAX_NAME + 50),
        "cadence": forms.text(form, "cadence", 20),
        "topics": forms.texts(form, "topics"),
        "timezone": forms.text(form, "timezone", 100),
        "send_hour": forms.text(form, "send_hour", 10),
        "send_weekday": forms.text(form, "send_weekday", 10),
    }
    errors: dict[str, str] = {}
    known = await publisher.subscribers.known_topics()
    name = _checked(errors, "name", check_name, values["name"])
    prefs = Preferences(
        cadence=_checked(errors, "cadence", check_cadence, values["cadence"]),
        topics=_checked(errors, "topics", lambda t: check_topics(t, known), values["topics"]),
        timezone=_checked(errors, "timezone", check_timezone, values["timezone"]),
        send_hour=_checked(errors, "send_hour", check_send_hour, values["send_hour"]),
        send_weekday=_checked(errors, "send_weekday", check_send_weekday, values["send_weekday"]),
    )
    if errors:
        return await _preferences_page(request, subscriber, values=values, errors=errors, status=422)
    await publisher.subscribers.update(subscriber.id, name=name, prefs=prefs)
    raise web.HTTPSeeOther(request.path + "?saved=1")


async def preferences_link_form(request: web.Request) -> web.Response:
    return render(request, "preferences_request.html", {"values": {"email": ""}, "errors": {}})


async def send_preferences_link(request: web.Request) -> web.Response:
    """Email a link to their preferences to a reader who lost theirs (same answer for anyone)."""
    publisher = request.app[PUBLISHER]
    form = await forms.read_form(request)
    _require_csrf(request, form)
    raw = forms.text(form, "email", MAX_EMAIL + 50)
    errors: dict[str, str] = {}
    address = _checked(errors, "email", normalize_email, raw)
    await _limit(request, "preferences-link", email_hash(address) if address else None)
    if errors:
        return render(
            request, "preferences_request.html", {"values": {"email": raw}, "errors": _translated(request, errors)},
            status=422,
        )
    if not forms.text(form, forms.HONEYPOT):
        publisher.subscribers.preferences_link_later(address)
    return _check_inbox(request)


# --- unsubscribe ---------------------------------------------------------------------


async def unsubscribe_page(request: web.Request) -> web.Response:
    """GET shows a button: link scanners and prefetchers must not unsubscribe anyone."""
    try:
        subscriber = await _holder(request, _read(request, Purpose.UNSUBSCRIBE))
    except InvalidToken:
        return _link_problem(request)
    if subscriber is None or subscriber.status != Status.ACTIVE and subscriber.status != Status.PENDING:
        return render(request, "unsubscribed.html", {"subscriber": subscriber, "resubscribe_path": _resubscribe_path(request, subscriber)})
    return render(
        request, "unsubscribe.html",
        {"subscriber": subscriber, "preferences_path": _path(request, Purpose.PREFERENCES, subscriber)},
    )


async def unsubscribe(request: web.Request) -> web.Response:
    """RFC 8058 one-click (``List-Unsubscribe=One-Click``, no cookie) or the page's button."""
    publisher = request.app[PUBLISHER]
    form = await forms.read_form(request)
    one_click = form.get("List-Unsubscribe") == "One-Click"
    if not one_click:
        _require_csrf(request, form)
    try:
        subscriber = await _holder(request, _read(request, Purpose.UNSUBSCRIBE))
    except InvalidToken:
        return _link_problem(request)
    if subscriber is not None:
        subscriber = await publisher.subscribers.leave(subscriber.id)
    # Unknown (erased) or not the token's owner: nothing to do, and the reader is out either way.
    return render(
        request, "unsubscribed.html", {"subscriber": subscriber, "resubscribe_path": _resubscribe_path(request, subscriber)}
    )


def _resubscribe_path(request: web.Request, subscriber: Subscriber | None) -> str:
    return _path(request, Purpose.PREFERENCES, subscriber) if subscriber is not None else ""


def add_subscription_routes(app: web.Application) -> None:
    settings = app[PUBLISHER].settings.subscribers
    app[LIMITS] = RateLimits(settings.signup_rate_per_client, settings.signup_rate_per_address)
    app.router.add_get(urls.SUBSCRIBE.path, subscribe_form)
    app.router.add_post(urls.SUBSCRIBE.path, subscribe)
    app.router.add_get(urls.CONFIRM.path, confirm_page)
    app.router.add_post(urls.CONFIRM.path, confirm)
    app.router.add_post(urls.CONFIRM_AGAIN.path, resend_confirmation)
    app.router.add_get(urls.PREFERENCES_REQUEST.path, preferences_link_form)
    app.router.add_post(urls.PREFERENCES_REQUEST.path, send_preferences_link)
    app.router.add_get(urls.PREFERENCES.path, preferences)
    app.router.add_post(urls.PREFERENCES.path, save_preferences)
    app.router.add_get(urls.UNSUBSCRIBE.path, unsubscribe_page)
    app.router.add_post(urls.UNSUBSCRIBE.path, unsubscribe)
