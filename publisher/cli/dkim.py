"""``publisher dkim keygen``: make a signing key and tell the operator what to publish and configure.

The key file is written by :mod:`publisher.mail.dkim_keys`; this module only
parses the options and prints the DNS record and the config lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from publisher.cli.output import out


@click.group("dkim")
def group() -> None:
    """DKIM signing: make a key and print the DNS record to publish."""


@group.command("keygen")
@click.option("--selector", required=True, help="Selector, e.g. news2025: the record is SELECTOR._domainkey.DOMAIN.")
@click.option("--domain", required=True, help="Signing domain: the From address's domain or a parent of it.")
@click.option("--type", "key_type", type=click.Choice(["rsa", "ed25519"]), default="rsa", show_default=True,
              help="rsa is verified everywhere; many receivers still ignore ed25519 signatures.")
@click.option("--bits", type=click.IntRange(1024, 4096), help="RSA key size  [default: 2048]")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File for the private key: created with mode 0600, never overwritten.")
def dkim_keygen(selector: str, domain: str, key_type: str, bits: int | None, out_file: Path) -> None:
    """Write a new DKIM private key to --out; print its DNS TXT record and the [dkim] config lines."""
    from publisher.mail import dkim, dkim_keys  # the crypto library, for this command only
    from publisher.mail.dkim_keys import KeyFileError, write_private_key

    if key_type == "ed25519" and bits is not None:
        raise click.UsageError("--bits is for RSA keys; ed25519 keys have one size")
    try:
        selector, domain = dkim.check_selector(selector), dkim.check_domain(domain)
        key = dkim_keys.generate_key("ed25519" if key_type == "ed25519" else "rsa", bits or dkim_keys.RECOMMENDED_RSA_BITS)
    except dkim_keys.DkimError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        path = write_private_key(out_file, key)
    except FileExistsError:
        raise click.ClickException(f"not overwriting {out_file}: it exists (choose another --out)") from None
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    value = dkim_keys.dns_txt_value(key)
    lines = [
        f"wrote the private key to {path} (mode 0600): keep it secret, back it up",
        "",
        f"1. Publish this DNS TXT record (name {selector}._domainkey.{domain}; the value is cut into",
        "   quoted strings of at most 255 characters, as DNS needs, which resolvers join):",
        "",
        f"   {dkim_keys.zone_line(selector, domain, value)}",
        "",
        f"   A DNS web form that asks for a name and a value: {selector}._domainkey and",
        f"   {value}",
        "",
        f"2. Once `dig +short TXT {selector}._domainkey.{domain}` shows it, add to the config file:",
        "",
        "[dkim]",
        f'selector = "{selector}"',
        f'domain = "{domain}"',
        f"key_file = {json.dumps(str(path))}",
    ]
    for line in lines:
        out.print(line, markup=False, highlight=False)
