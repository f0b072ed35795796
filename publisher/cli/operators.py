"""``publisher operators``: the dashboard's accounts (add, passwd, remove, list, totp).

A password is read from a hidden prompt, typed twice, or with ``--password-stdin``
from the first line of standard input (for scripts: never as an argument, which
``ps`` and shell histories show).  Every change is written to the audit log as done
by ``cli:<the system user>``.
"""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING, TypeVar

import click

from publisher.cli.context import with_publisher
from publisher.cli.output import out, when

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from publisher.admin.model import Actor, Operator
    from publisher.app import Publisher

T = TypeVar("T")
ROLES = click.Choice(["admin", "editor", "viewer"])
_PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of standard input (for scripts)."
)


@click.group("operators")
def group() -> None:
    """The dashboard's operators (/admin/): accounts, passwords, second factor."""


def _actor() -> Actor:
    from publisher.admin.model import Actor

    return Actor(f"cli:{getpass.getuser()}")


def _password(from_stdin: bool) -> str:
    """The new password, checked against the policy before anything is stored."""
    from publisher.admin.model import OperatorError
    from publisher.admin.passwords import check_policy

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")
    try:
        check_policy(password)
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from None
    return password


def _run(ctx: click.Context, work: Callable[[Publisher], Awaitable[T]]) -> T:
    """``work`` with a started Publisher; an OperatorError is the command's error (exit 1)."""
    from publisher.admin.model import OperatorError

    try:
        return with_publisher(ctx, work)
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from None


@group.command("add")
@click.argument("email")
@click.option("--role", type=ROLES, required=True, help="viewer: reads; editor: also articles and sends; admin: everything.")
@_PASSWORD_STDIN
@click.pass_context
def add(ctx: click.Context, email: str, role: str, password_stdin: bool) -> None:
    """Add an operator who signs in at /admin/ with EMAIL and a password."""
    from publisher.admin.model import Role

    password = _password(password_stdin)
    operator = _run(ctx, lambda p: p.operators.add(email, Role(role), password, _actor()))
    out.print(f"added {operator.email} ({operator.role})", highlight=False, markup=False)


@group.command("passwd")
@click.argument("email")
@_PASSWORD_STDIN
@click.pass_context
def passwd(ctx: click.Context, email: str, password_stdin: bool) -> None:
    """Set an operator's password (their sessions end)."""
    password = _password(password_stdin)
    _run(ctx, lambda p: p.operators.set_password(email, password, _actor()))
    out.print(f"password of {email} changed", highlight=False, markup=False)


@group.command("remove")
@click.argument("email")
@click.pass_context
def remove(ctx: click.Context, email: str) -> None:
    """Remove an operator (the audit log keeps their email on what they did)."""
    _run(ctx, lambda p: p.operators.remove(email, _actor()))
    out.print(f"removed {email}", highlight=False, markup=False)


@group.command("list")
@click.pass_context
def list_operators(ctx: click.Context) -> None:
    """Every operator: email, role, second factor, last sign-in."""
    operators: list[Operator] = _run(ctx, lambda p: p.operators.every())
    for operator in operators:
        factor = "totp" if operator.has_totp else "password only"
        last = when(operator.last_login_at) if operator.last_login_at else "never signed in"
        out.print(f"{operator.email}\t{operator.role}\t{factor}\t{last}", highlight=False, markup=False)
    if not operators:
        out.print("no operators yet: publisher operators add EMAIL --role admin", highlight=False, markup=False)


@group.command("totp")
@click.argument("email")
@click.option("--enable", "enable", flag_value=True, default=None, help="A new secret (shown once); sign-ins then ask for a code.")
@click.option("--disable", "enable", flag_value=False, help="Sign-ins ask for the password only.")
@click.pass_context
def totp_command(ctx: click.Context, email: str, enable: bool | None) -> None:
    """Turn an operator's second factor (a code from an authenticator app) on or off."""
    if enable is None:
        raise click.UsageError("say --enable or --disable")
    if not enable:
        _run(ctx, lambda p: p.operators.disable_totp(email, _actor()))
        out.print(f"second factor of {email} turned off", highlight=False, markup=False)
        return
    from publisher.admin.totp import provisioning_uri

    from publisher.admin.service import operator_email

    async def work(publisher: Publisher) -> tuple[str, str]:
        secret = await publisher.operators.enable_totp(email, _actor())
        return secret, provisioning_uri(secret, operator_email(email), publisher.settings.site.title)

    secret, uri = _run(ctx, work)
    out.print("Add this to the operator's authenticator app (shown only now):", highlight=False, markup=False)
    out.print(f"  {uri}", highlight=False, markup=False)
    out.print(f"  or type in the secret: {secret}", highlight=False, markup=False)
