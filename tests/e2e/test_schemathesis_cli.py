"""The schemathesis CLI with all checks against a running `coldchain serve` (issue 12, point 3).

Drives tools/schemathesis-run (a throwaway database, one gunicorn worker, an admin token, two
passes so the operations that revoke the caller's own access run apart). Bounded for the suite:
a few examples per operation and a fixed seed; run the tool by hand with more examples.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_schemathesis_cli_with_all_checks_finds_no_failure(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "schemathesis-run"),
            "--max-examples",
            "5",
            "--seed",
            "12",
            "--report-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=880,
    )
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert "unique failure" not in summary or " 0 unique failures" in summary, summary
    # The main pass runs with a valid token: were every answer a 401, it would test nothing else.
    main_pass = result.stdout.split("Schemathesis v")[1]
    assert "Authentication failed" not in main_pass, main_pass[-6000:]
