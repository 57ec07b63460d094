"""The ``mireg`` command: ``list``, ``plugins``, ``show``, ``run``, ``check`` and ``estimate``.

A user's mistake (a bad config, name, path or option) ends the command with one line on stderr
and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from mireg.config import Resolved, check_batch_size, load_config, resolve, resolve_device
from mireg.distributed import join, launched_with_ranks, leave, world
from mireg.errors import (
    ConfigError,
    Interrupted,
    MiregError,
    OutputError,
    UnknownEstimatorError,
)
from mireg.estimate_cli import add_estimate_parser, run_estimate
from mireg.options import option_specs
from mireg.registry import KIND_WORDS, _version, default_registry
from mireg.text import did_you_mean
from mireg.training import Trainer, results_table
from mireg.training.output import check_out

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
    """Describe every estimator or task called ``args.name``, of every kind (or of ``--kind``);
    a name that several plugins register is shown once per plugin, under its qualified name."""
    registry = default_registry()
    kinds = [args.kind] if args.kind else list(KIND_WORDS)
    found = []
    for kind in kinds:
        matches = sorted(registry.matches(kind, args.name), key=lambda info: info.plugin)
        if len(matches) > 1:
            names = ", ".join(repr(info.qualified_name) for info in matches)
            print(
                f"{args.name!r} is ambiguous: several plugins register the {KIND_WORDS[kind]} {names}; "
                "a configuration must use one of these qualified names"
            )
        found += matches
    if not found:
        records = [info for kind in kinds for info in registry.list(kind)]
        known = sorted({name for info in records for name in (info.name, *info.aliases)})
        searched = " or ".join(f"{KIND_WORDS[kind]}s" for kind in kinds)
        raise UnknownEstimatorError(
            f"no {searched} called {args.name!r}.{did_you_mean(args.name.lower(), known, n=3)} "
            f"Known: {', '.join(known) or 'none'} (see `mireg list`)"
        )
    for info in found:
        title = info.qualified_name if len(found) > 1 else info.name
        print(f"{title}  ({info.kind}, from {info.plugin} {info.version})")
        print(f"  {info.summary}")
        if info.aliases:
            print(f"  aliases: {', '.join(info.aliases)}")
        blocks = {"options": info.cls}
        if info.kind == "task":
            blocks.update({"[model] options": info.cls.model_options, "[eval] options": info.cls.eval_options})
        for title, cls in blocks.items():
            specs = option_specs(cls)
            print(f"  {title}:" if specs else f"  {title}: none")
            for spec in specs.values():
                print(f"    {spec.describe()}" + (f"  -- {spec.doc}" if spec.doc else ""))
        for reference in getattr(info.cls, "references", ()):
            print(f"  reference: {reference}")
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit status 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mireg", description="Mutual-information gradient estimators for PyTorch.")
    parser.add_argument("--version", action="version", version=f"mireg {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", help="list registered estimators and tasks")
    p.add_argument("--kind", choices=list(KIND_WORDS), default=None)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("plugins", help="list installed plugins and whether they loaded")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("show", help="describe an estimator or task by name: summary, options, references")
    p.add_argument("name")
    p.add_argument("--kind", choices=list(KIND_WORDS), default=None, help="search this kind only (default: all)")
    p = sub.add_parser("run", help="train a TOML configuration (progress, checkpoints, metrics, results)")
    p.add_argument("config", help="path of the TOML configuration")
    _out_arguments(p, "output directory (default: runs/<config name>)")
    p.add_argument("--seed", type=int, default=None, help="override train.seed")
    p.add_argument("--device", default=None, help="override train.device: cpu, cuda, cuda:N or auto")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="train on all ranks of a torchrun launch (implied when torchrun starts several processes)",
    )
    p = sub.add_parser("check", help="validate a configuration (names, options, types, paths) without training")
    p.add_argument("config", help="path of the TOML configuration")
    p.add_argument("--seed", type=int, default=None, help="override train.seed")
    p.add_argument("--device", default=None, help="override train.device")
    _out_arguments(p, "also check that `mireg run` could write into this output directory")
    add_estimate_parser(sub)
    return parser


def _out_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    parser.add_argument("--out", default=None, help=out_help)
    parser.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is in --out")
    parser.add_argument(
        "--force", action="store_true", help="start afresh in an --out that holds a run, deleting its files"
    )


def _out(args: argparse.Namespace) -> Path:
    """``--out`` as a path (default ``runs/<config name>``); the trainer checks and locks it (on
    rank 0) before it loads any data, ``check`` with :func:`~mireg.training.output.check_out`."""
    if args.out is not None and not args.out.strip():
        raise OutputError("--out is empty; give a folder path, or leave --out out for runs/<config name>")
    return Path(args.out) if args.out is not None else Path("runs") / Path(args.config).stem


def _resolved_config(args: argparse.Namespace) -> Resolved:
    config = load_config(args.config)
    overrides = {key: getattr(args, key, None) for key in ("seed", "device")}
    return resolve(config.with_train(**{key: value for key, value in overrides.items() if value is not None}))


@command("check")
def _check(args: argparse.Namespace) -> int:
    out = _out(args) if args.out is not None else None
    if out is not None:
        check_out(out, resume=args.resume, force=args.force)
    resolved = _resolved_config(args)
    config = resolved.config
    rows = resolved.dataset.train_rows()
    if rows is not None:
        try:
            check_batch_size(resolved.train, rows, **resolved.batch_limits())
        except MiregError as error:
            raise ConfigError(f"{args.config}: {error}") from None
    into = f", into {out}" if out is not None else ""
    estimator = f", estimator {config.estimator.name}" if config.estimator else ""
    print(
        f"{args.config}: ok (task {config.task.name}, data {config.data.name}{estimator}, "
        f"{resolved.train.epochs} epochs on {resolved.train.device}{into})"
    )
    return 0


@command("run")
def _run(args: argparse.Namespace) -> int:
    out = _out(args)
    resolved = _resolved_config(args)
    distributed = args.distributed or launched_with_ranks()
    if distributed:
        join(resolve_device(resolved.train.device))
    rank = world()[0]
    try:
        results = Trainer(resolved, out).run(resume=args.resume, force=args.force)
    except Interrupted as stop:
        print(f"mireg run: {stop}", file=sys.stderr)
        return 128 + stop.signal
    finally:
        if distributed:
            leave()
    if rank == 0:
        print(results_table(results, resolved.task))
        print(f"results: {out / 'results.json'}  metrics: {out / 'metrics.jsonl'}  curves: {out / 'curves.png'}")
    return 0


@command("estimate")
def _estimate(args: argparse.Namespace) -> int:
    return run_estimate(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except MiregError as error:
        message = " ".join(str(error).split())  # one line, whatever the message holds
        print(f"mireg {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
