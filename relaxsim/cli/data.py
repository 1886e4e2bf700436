"""``relaxsim data``: fetch the files of the file-based tasks and show where they are.

    relaxsim data download svhn [--extra] [--dir DIR] [--mirror URL] [--quiet]
    relaxsim data download shakespeare
    relaxsim data list
"""

from __future__ import annotations

import argparse
import sys


def add_data_command(sub) -> None:
    """Register ``relaxsim data`` on the subcommand parsers ``sub`` of the main parser."""
    p = sub.add_parser("data", help="download the data of the svhn and shakespeare tasks")
    actions = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    d = actions.add_parser("download", help="fetch a data set from its official address into "
                                            "the cache directory, checking its checksums")
    d.add_argument("name", help="svhn or shakespeare")
    d.add_argument("--extra", action="store_true",
                   help="svhn: also the extra split (531,131 images, 1.3 GB)")
    d.add_argument("--dir", help="where to put the files (default: $RELAXSIM_DATA/NAME, "
                                 "else ~/.cache/relaxsim/NAME)")
    d.add_argument("--mirror", help="base URL or local directory holding the files, used "
                                    "instead of the official address")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_download)

    ls = actions.add_parser("list", help="the data sets, their files and whether they are here")
    ls.set_defaults(func=cmd_list)


def cmd_download(args: argparse.Namespace) -> int:
    from relaxsim.data.download import download

    download(args.name, optional=args.extra, directory=args.dir, mirror=args.mirror,
             progress=not args.quiet and sys.stderr.isatty())
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from relaxsim.data.download import SOURCES, data_dir

    print(f"data directory: {data_dir()}  (set RELAXSIM_DATA to change it)")
    for name in SOURCES:
        source = SOURCES.get(name)
        print(f"{name}: {source.home}")
        for remote in source.files:
            path = source.directory() / remote.name
            state = f"present, {path.stat().st_size:,} bytes" if path.is_file() else "missing"
            flag = ", with --extra" if remote.optional else ""
            print(f"  {remote.name:<16} {remote.size:>7}{flag:<15}  {state}: {path}")
    return 0
