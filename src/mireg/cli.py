"""The ``mireg`` command: ``list``, ``plugins``, ``show``, ``run`` and ``check``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mireg.errors import MiregError, UnknownEstimatorError
from mireg.options import option_specs
from mireg.registry import _version, default_registry

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
    kinds = [args.kind] if args.kind else ["score", "mi_gradient"]
    found = []
    for kind in kinds:
        try:
            found.append(registry.get(kind, args.name))
        except UnknownEstimatorError:
            if len(kinds) == 1 or (kind == kinds[-1] and not found):
                raise
    for info in found:
        print(f"{info.name}  ({info.kind}, from {info.plugin} {info.version})")
        print(f"  {info.summary}")
        if info.aliases:
            print(f"  aliases: {', '.join(info.aliases)}")
        specs = option_specs(info.cls)
        print("  options:" if specs else "  options: none")
        for spec in specs.values():
            print(f"    {spec.describe()}" + (f"  -- {spec.doc}" if spec.doc else ""))
        for reference in info.cls.references:
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
    p = sub.add_parser("run", help="train a TOML configuration (progress, checkpoints, metrics, results)")
    p.add_argument("config", help="path of the TOML configuration")
    p.add_argument("--out", default=None, help="output directory (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is in --out")
    p.add_argument("--seed", type=int, default=None, help="override train.seed")
    p.add_argument("--device", default=None, help="override train.device: cpu, cuda, cuda:N or auto")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="train on all ranks of a torchrun launch (implied when torchrun starts several processes)",
    )
    p = sub.add_parser("check", help="validate a configuration (names, options, types, paths) without training")
    p.add_argument("config", help="path of the TOML configuration")
    from mireg.estimate_cli import add_estimate_parser

    add_estimate_parser(sub)
    return parser


def _resolved_config(args: argparse.Namespace) -> Any:
    from mireg.config import load_config, resolve

    config = load_config(args.config)
    overrides = {key: getattr(args, key, None) for key in ("seed", "device")}
    return resolve(config.with_train(**{key: value for key, value in overrides.items() if value is not None}))


@command("check")
def _check(args: argparse.Namespace) -> int:
    resolved = _resolved_config(args)
    config = resolved.config
    estimator = f", estimator {config.estimator.name}" if config.estimator else ""
    print(
        f"{args.config}: ok (task {config.task.name}, data {config.data.name}{estimator}, "
        f"{resolved.train.epochs} epochs on {resolved.train.device})"
    )
    return 0


@command("run")
def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mireg.distributed import join, launched_with_ranks, leave, world
    from mireg.training import Interrupted, Trainer, resolve_device, results_table

    resolved = _resolved_config(args)
    distributed = args.distributed or launched_with_ranks()
    if distributed:
        join(resolve_device(resolved.train.device))
    rank = world()[0]
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    try:
        results = Trainer(resolved, out).run(resume=args.resume)
    except Interrupted as stop:
        print(f"mireg run: {stop}", file=sys.stderr)
        return 128 + stop.signal
    finally:
        if distributed:
            leave()
    if rank == 0:
        print(results_table(results, resolved.task_cls.headline))
        print(f"results: {out / 'results.json'}  metrics: {out / 'metrics.jsonl'}  curves: {out / 'curves.png'}")
    return 0


@command("estimate")
def _estimate(args: argparse.Namespace) -> int:
    from mireg.estimate_cli import run_estimate

    return run_estimate(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except MiregError as error:
        print(f"mireg {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
