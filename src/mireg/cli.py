"""The ``mireg`` command: ``list``, ``plugins``, ``show`` (and ``run``/``check`` from the trainer)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from mireg.errors import MiregError
from mireg.options import option_specs
from mireg.registry import KINDS, default_registry, _version

Command = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def decorate(function: Command) -> Command:
        _COMMANDS[name] = function
        return function

    return decorate


@command("list")
def _list(args: argparse.Namespace) -> int:
    records = default_registry().list(args.kind)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    if not records:
        print("no estimators registered: install a plugin, e.g. `pip install plugins/ssge`")
        return 0
    width = max(len(r.name) for r in records)
    for r in records:
        aliases = f" (aliases: {', '.join(r.aliases)})" if r.aliases else ""
        print(f"{r.name:<{width}}  {r.kind:<11}  {r.plugin} {r.version}  {r.summary}{aliases}")
    return 0


@command("plugins")
def _plugins(args: argparse.Namespace) -> int:
    records = default_registry().plugins()
    if args.json:
        print(json.dumps([p.to_dict() for p in records], indent=2))
        return 0
    for p in records:
        detail = ", ".join(p.estimators) if p.status == "ok" else f"error: {p.error}"
        print(f"{p.distribution} {p.version}  [{p.status}]  {detail}")
    return 0


@command("show")
def _show(args: argparse.Namespace) -> int:
    registry = default_registry()
    kinds = [args.kind] if args.kind else [k for k in KINDS if any(
        e for e in registry.list(k) if args.name.rpartition("/")[2].lower() in {e.name, *e.aliases}
    )] or ["score"]
    for kind in kinds:
        info = registry.get(kind, args.name)
        print(f"{info.name}  ({info.kind}, from {info.plugin} {info.version})")
        print(f"  {info.summary}")
        if info.aliases:
            print(f"  aliases: {', '.join(info.aliases)}")
        specs = option_specs(info.cls)
        print("  options:" if specs else "  options: none")
        for spec in specs.values():
            print(f"    {spec.describe()}" + (f"  -- {spec.doc}" if spec.doc else ""))
        for reference in getattr(info.cls, "references", ()):
            print(f"  reference: {reference}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mireg", description="Mutual-information gradient estimators for PyTorch.")
    parser.add_argument("--version", action="version", version=f"mireg {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", help="list registered estimators")
    p.add_argument("--kind", choices=["score", "mi_gradient"], default=None)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("plugins", help="list installed plugins and whether they loaded")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("show", help="describe one estimator: summary, options, references")
    p.add_argument("name")
    p.add_argument("--kind", choices=["score", "mi_gradient"], default=None)
    for extend in _PARSER_EXTENSIONS:
        extend(sub)
    return parser


#: Functions adding more sub-commands (the trainer's ``run`` and ``check``).
_PARSER_EXTENSIONS: list[Callable[[argparse._SubParsersAction], None]] = []  # type: ignore[type-arg]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except MiregError as error:
        print(f"mireg {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
