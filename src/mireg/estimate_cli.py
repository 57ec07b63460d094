"""``mireg estimate``: the MI of a data set on disk (``DATA.npz`` with keys x and y, or ``X.npy Y.npy``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mireg.errors import MiregError
from mireg.estimate import estimate_mi


def add_estimate_parser(sub: Any) -> None:
    """Add the ``estimate`` subcommand to the subparsers ``sub`` of the ``mireg`` parser."""
    p = sub.add_parser(
        "estimate",
        help="estimate I(x; y) of a data set on held-out rows (DATA.npz with keys x, y, or X.npy Y.npy)",
    )
    p.add_argument("data", nargs="+", metavar="FILE", help="DATA.npz (arrays x and y) or X.npy Y.npy")
    p.add_argument("--estimator", default="infonce", help="a registered estimator that gives a value (mireg list)")
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an estimator option (repeatable); VALUE is read as JSON (64, 1e-3, true, null), else as text",
    )
    p.add_argument("--batch-size", type=int, default=None, help="rows per step (default: the estimator's)")
    p.add_argument("--max-steps", type=int, default=None, help="training step budget (default: the estimator's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the estimator's)")
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience in steps")
    p.add_argument("--seed", type=int, default=0, help="seed of the splits, batches and initialisation")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["hidden=64", "critic=concat"]`` -> ``{"hidden": 64, "critic": "concat"}`` (values as JSON, else text)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"an option must be KEY=VALUE, e.g. -o hidden=64, got {pair!r}")
        try:
            options[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            options[key.strip()] = text
    return options


def load_pair(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """x and y from ``[DATA.npz]`` (keys ``x`` and ``y``) or ``[X.npy, Y.npy]``."""
    if len(paths) == 1:
        path = Path(paths[0])
        if path.suffix != ".npz":
            raise ValueError(
                f"one file must be an .npz archive holding arrays x and y, got {path}; or give X.npy Y.npy"
            )
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("x", "y") if key not in archive.files]
            if missing:
                raise ValueError(f"{path} has no array(s) {missing}; it holds {archive.files}, and needs x and y")
            return archive["x"], archive["y"]
    if len(paths) == 2:
        return np.load(paths[0], allow_pickle=False), np.load(paths[1], allow_pickle=False)
    raise ValueError(f"give DATA.npz or X.npy Y.npy, got {len(paths)} files")


def run_estimate(args: argparse.Namespace) -> int:
    """Run ``mireg estimate``; user mistakes print one error line and return 2."""
    try:
        x, y = load_pair(args.data)
        result = estimate_mi(
            x,
            y,
            args.estimator,
            options=parse_options(args.option),
            batch_size=args.batch_size,
            max_steps=args.max_steps,
            lr=args.lr,
            patience=args.patience,
            seed=args.seed,
            device=args.device,
        )
    except (MiregError, ValueError, TypeError, OSError) as error:
        print(f"mireg estimate: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    train, validation, test = result.rows
    print(f"I(x; y) = {result.value:.4f} ± {result.stderr:.4f} nats  ({result.estimator})")
    print(
        f"  {result.steps} steps (kept step {result.best_step}), {result.seconds:.1f} s; rows: {train} train, "
        f"{validation} validation, {test} test in {result.test_batches} batches"
    )
    return 0
