"""Work per web page: SQL statements and Python CPU time, for this tree and for another revision.

Where benchmarks/pages.py times the pages under load (which a busy machine blurs), this counts
what each page costs, in one process through Flask's test client, so that a change meant to keep
behaviour (a restructuring) can be checked page by page: the statement counts do not depend on
the machine at all, and a process's CPU time far less than the wall time. Each tree runs on a
fresh PostgreSQL database of its own (dropped at the end) with the data of benchmarks/pages.py
(a district of `--centres` centres, `--days` of one-minute readings), built by that tree's own
pages.py, and as the same district officer.

    python benchmarks/page_work.py [--before REV] [--after REV] [--centres 100] [--days 3]
        [--repeat 15]

Prints a table, and as its LAST line one JSON object: per page, statements and median CPU
milliseconds for this tree (or `--after REV`) and, with `--before`, for REV, and the CPU ratio
after / before. E.g. the restructuring of issue 13: --before 1a5a47d --after d18f5c3.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def measure(centres: int, days: int, repeat: int) -> dict[str, dict[str, float]]:
    """The pages of the tree in the working directory (run in a process of its own)."""
    root = Path.cwd()
    sys.path[:0] = [str(root), str(root / "benchmarks")]
    import harness
    import pages
    from sqlalchemy import event

    from logistics.app import create_app
    from logistics.config import load_settings
    from logistics.runtime import Runtime

    url = harness.create_database()
    try:
        runtime = Runtime.from_settings(load_settings({"database_url": url, "auth_rate_limit": ""}))
        pages.build_schema(runtime)
        ids = pages.generate(runtime, centres)
        pages.load_readings(url, ids["units"], days)
        statements: list[str] = []
        event.listen(runtime.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        client = create_app(runtime=runtime).test_client()
        form = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        login = {"username": "bench-district", "password": pages.PASSWORD, "csrf_token": token}
        assert client.post("/login", data=login).status_code in (302, 303)
        found = {}
        for name, path in pages.paths(ids).items():
            for _ in range(3):  # warm caches (translations, reference data, the token epoch)
                assert client.get(path).status_code == 200, (name, path)
            counts, cpu = [], []
            for _ in range(repeat):
                statements.clear()
                began = time.process_time()
                assert client.get(path).status_code == 200, (name, path)
                cpu.append((time.process_time() - began) * 1000)
                counts.append(len(statements))
            found[name] = {
                "statements": statistics.median(counts),
                "cpu_ms": round(statistics.median(cpu), 2),
            }
        runtime.close()
        return found
    finally:
        harness.drop_database(url)


def run_revision(rev: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """run_tree on the code of a git revision, exported to a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="page-work-") as tree:
        archive = subprocess.run(
            ["git", "-C", str(HERE), "archive", rev], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        return run_tree(Path(tree), args)


def run_tree(tree: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    command = [sys.executable, str(Path(__file__).resolve()), "--measure"]
    command += ["--centres", str(args.centres), "--days", str(args.days)]
    command += ["--repeat", str(args.repeat)]
    out = subprocess.run(
        command,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--before", help="a git revision to compare with (exported, not checked out)"
    )
    parser.add_argument("--after", help="a git revision to measure instead of this tree")
    parser.add_argument("--centres", type=int, default=100)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.centres, args.days, args.repeat)))
        return
    now = run_revision(args.after, args) if args.after else run_tree(HERE, args)
    before = run_revision(args.before, args) if args.before else None
    result = {}
    print(f"{'page':18} {'statements':>14} {'cpu ms':>18}")
    for name, this in now.items():
        then = (before or {}).get(name)
        row = {"statements": this["statements"], "cpu_ms": this["cpu_ms"]}
        if then:
            row |= {
                "statements_before": then["statements"],
                "cpu_ms_before": then["cpu_ms"],
                "cpu_ratio": round(this["cpu_ms"] / then["cpu_ms"], 2),
            }
        result[name] = row
        was = f"{then['statements']:>5} ->" if then else ""
        cpu_was = f"{then['cpu_ms']:>7} ->" if then else ""
        print(f"{name:18} {was:>8}{this['statements']:>5} {cpu_was:>10}{this['cpu_ms']:>8}")
    summary = {"bench": "page_work", "before": args.before, "after": args.after or "this tree"}
    print(json.dumps({**summary, "pages": result}))


if __name__ == "__main__":
    main()
