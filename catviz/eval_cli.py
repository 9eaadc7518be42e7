"""``catviz-eval``: score checkpoints (:mod:`catviz.train_cli.evaluate`), compare two or more over
a split with intervals (:mod:`catviz.compare`, ``--compare``) or score their explanation maps
(:mod:`catviz.faithfulness`, ``--faithfulness``).

One error channel: the jobs raise typed errors and :func:`main` alone turns them into a
message and an exit code (:data:`EXIT_CODES_HELP`, shown by ``--help``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from catviz.models.checkpoint import CheckpointError
from catviz.models.preprocess import ImageLoadError
from catviz.train_cli import evaluate
from catviz.train_cli.data import DatasetError
from catviz.train_cli.distributed import env_info
from catviz.train_cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    ArgumentParser,
    RunError,
    Terminated,
    UsageError,
    sigterm_as_interrupt,
)

from . import compare

PROG = "catviz-eval"
EXIT_CODES_HELP = (
    "exit codes: 0 success; 1 failure (unreadable checkpoint or dataset, a checkpoint whose labels differ "
    "from the dataset's, an output file that cannot be written), the message names the file; 2 usage error (invalid "
    "flag value, --json file or --report folder that exists without --overwrite, --compare without two "
    "checkpoints or --report, the same checkpoint given twice, --bootstrap or --seed out of range, a --reference "
    "that matches none), found before any checkpoint or data is loaded; 130 interrupted (Ctrl-C), "
    "143 terminated (SIGTERM); nothing is written then"
)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Evaluate catviz checkpoints (mAP, CP, CR, CF1, OP, OR, OF1, per-class AP). "
        "Several checkpoints give several rows, like the paper's Table 3.",
        epilog=evaluate.METRICS_HELP + " " + EXIT_CODES_HELP,
    )
    evaluate.add_arguments(parser)
    parser.add_argument("--faithfulness", action="store_true",
                        help="instead, measure how faithful the explanation maps are (deletion/insertion AUC, "
                        "ROAD, pointing game); see `catviz-eval --faithfulness --help`")
    compare.add_arguments(parser)
    return parser


def job_parser(argv: list[str]) -> argparse.ArgumentParser:
    """``--faithfulness`` chooses that job's own options (and its ``--help``); else the scoring
    and ``--compare`` options."""
    if "--faithfulness" in argv:
        from . import faithfulness

        parser = faithfulness.build_parser()
        parser.epilog = EXIT_CODES_HELP
        return parser
    return build_parser()


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, Callable[..., int]]:
    """(args, the job's ``run``), every flag checked before any work: argparse exits 2 on a
    malformed one, the checks raise :class:`UsageError`."""
    args = parser.parse_args(argv)
    if env_info().enabled and not getattr(args, "compare", False):
        raise UsageError("under torchrun only --compare splits its pass over the processes; run this job in one "
                         "process")
    if args.faithfulness:
        from . import faithfulness

        return faithfulness.check_arguments(args), faithfulness.run
    evaluate.check_arguments(args)
    compare.check_arguments(args)
    return args, compare.run if args.compare else evaluate.run


def main(argv: list[str] | None = None) -> int:
    """Exit status: see :data:`EXIT_CODES_HELP`."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = job_parser(argv)
    try:
        with sigterm_as_interrupt():
            try:
                args, run = parse(parser, argv)
            except SystemExit as stop:  # argparse: a malformed or out-of-range flag (2), printed; --help exits
                if stop.code in (0, None):
                    raise
                return stop.code if isinstance(stop.code, int) else EXIT_USAGE
            return run(args)
    except UsageError as err:
        print(f"{parser.prog}: error: {err}\n(all options: {parser.prog} --help)", file=sys.stderr)
        return EXIT_USAGE
    except (CheckpointError, DatasetError, ImageLoadError, RunError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except Terminated:
        print(f"{PROG}: terminated; nothing written", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
