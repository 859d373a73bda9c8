"""``python -m hinode.security`` (also ``hinode security``): see the package docstring."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from pathlib import Path

import yaml

from hinode.security import __doc__ as package_doc
from hinode.security import api_secrets

ROLES = ("viewer", "admin")
SCOPE_NAME = re.compile(r"^[a-z][a-z0-9_]*:(read|write)$")  # as cloud/api/scopes.py


def _scope_list(text: str) -> list[str]:
    """``--scopes a:read,b:read`` -> ['a:read', 'b:read'] (the API checks the names against its registry)."""
    scopes = [part.strip() for part in text.split(",") if part.strip()]
    bad = [name for name in scopes if not SCOPE_NAME.match(name)]
    if bad or not scopes:
        raise argparse.ArgumentTypeError(f"expected comma-separated scope names like meters:read,vitals:read; "
                                         f"not scope names: {', '.join(bad) or '(none given)'}")
    return list(dict.fromkeys(scopes))


def _entry(args: argparse.Namespace, **fields) -> str:
    """One config entry as YAML; ``scopes`` only when --scopes was given (else the role's defaults)."""
    if args.scopes is not None:
        fields["scopes"] = args.scopes
    return yaml.safe_dump([fields], sort_keys=False)


def _read_secret(prompt: str) -> str:
    """From the terminal without echo, or the first line of stdin (never from argv: ps shows argv)."""
    if sys.stdin.isatty():
        value = getpass.getpass(prompt)
        if getpass.getpass("again: ") != value:
            raise SystemExit("the two entries differ")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise SystemExit("empty input")
    return value


def cmd_mqtt(args: argparse.Namespace) -> int:
    from hinode.security.bundle import generate
    from hinode.security.inventory import InventoryError, load_inventory
    try:
        inventory = load_inventory(args.inventory)
    except InventoryError as exc:
        print(exc, file=sys.stderr)
        return 2
    enroll_config = None
    if args.enroll_config:
        from hinode.security.enroll import EnrollError, load_enroll_config
        try:
            enroll_config = load_enroll_config(args.enroll_config)
        except EnrollError as exc:
            print(exc, file=sys.stderr)
            return 2
    bundle = generate(inventory, args.out, broker_files=enroll_config is None)
    for path in bundle.created:
        print(f"created {path.relative_to(bundle.root)}")
    if enroll_config is not None:
        from hinode.security.enroll import EnrollmentService
        service = EnrollmentService(enroll_config)
        try:
            for name in service.write_broker_files():
                print(f"changed broker/{name} (inventory + enrolled agents)")
        finally:
            service.close()
    print(f"broker config: {bundle.broker_config_path} (add its lines to mosquitto.conf)")
    print(f"per identity (mqtt: section for site.yaml / cloud.yaml): {bundle.root}/clients/<username>/mqtt.yaml")
    for ident in bundle.identities():
        print(f"  {ident.username:<32} {ident.directory}")
    return 0


def cmd_new_token(args: argparse.Namespace) -> int:
    token = api_secrets.new_token()
    print(f"token (give it to the client; it is not stored anywhere): {token}", file=sys.stderr)
    print(_entry(args, name=args.name, role=args.role, hash=api_secrets.hash_token(token)), end="")
    return 0


def cmd_hash_token(args: argparse.Namespace) -> int:
    token = _read_secret("token: ")
    print(_entry(args, name=args.name, role=args.role, hash=api_secrets.hash_token(token)), end="")
    return 0


def cmd_add_user(args: argparse.Namespace) -> int:
    password = _read_secret(f"password for {args.username}: ")
    if len(password) < 10:
        print("refused: a password needs at least 10 characters", file=sys.stderr)
        return 2
    print(_entry(args, username=args.username, role=args.role, password_hash=api_secrets.hash_password(password)),
          end="")
    return 0


def cmd_new_secret(args: argparse.Namespace) -> int:
    from hinode.security.bundle import _write_secret
    path = Path(args.file)
    if path.exists() and not args.force:
        print(f"{path} exists (use --force to replace it: every issued token becomes invalid)", file=sys.stderr)
        return 2
    _write_secret(path, api_secrets.new_token() + api_secrets.new_token() + "\n")
    print(f"wrote {path} (0600): set api.auth.secret_file to it")
    return 0


def _add_scopes_option(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--scopes", type=_scope_list, default=None, metavar="A:read,B:read",
                     help="exactly these scopes instead of the role's defaults (personal scopes such as "
                          "vitals:read are granted only this way)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hinode.security", description=package_doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    mqtt = sub.add_parser("mqtt", help="CA, broker and client certificates, passwords, Mosquitto passwd/ACL/TLS config")
    mqtt.add_argument("--inventory", required=True, help="YAML: broker hostnames, cloud identities, sites -> agents")
    mqtt.add_argument("--out", required=True, help="output directory (kept 0700; existing keys and passwords are kept)")
    mqtt.add_argument("--enroll-config", help="enroll.yaml: the broker's acl, passwd and CRL then include the agents "
                      "enrolled since (hinode/security/README.md, Enrollment); files that would not change are kept")
    mqtt.set_defaults(func=cmd_mqtt)
    for name, func, text in (("new-token", cmd_new_token, "make a random API token; prints its config entry"),
                             ("hash-token", cmd_hash_token, "hash a token read from stdin; prints its config entry")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--name", default="api-client", help="a label for logs and /metrics")
        cmd.add_argument("--role", choices=ROLES, default="viewer")
        _add_scopes_option(cmd)
        cmd.set_defaults(func=func)
    user = sub.add_parser("add-user", help="hash a user's password (read from the terminal or stdin)")
    user.add_argument("username")
    user.add_argument("--role", choices=ROLES, default="viewer")
    _add_scopes_option(user)
    user.set_defaults(func=cmd_add_user)
    secret = sub.add_parser("new-secret", help="write a random HMAC key for the tokens the API issues")
    secret.add_argument("file")
    secret.add_argument("--force", action="store_true")
    secret.set_defaults(func=cmd_new_secret)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
