"""CI runs exactly the README's test command."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = [block.split("```", 1)[0].strip() for block in readme.split("```sh\n")[1:3]]
    setup, test = blocks
    assert setup.endswith('chatwire "Why is the sky blue?"')
    assert test.endswith("python -m pytest")
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert ci[-1] == test
