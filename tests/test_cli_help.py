"""Command-line help and progress output read well: every `kinkgrad train` option has help text
and shows its default, no `--help` prints reST markup, the documented run times agree, and
progress written to a log (not a terminal) is plain lines without carriage returns or escape
codes, nested bars included."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kinkgrad import _progress
from kinkgrad.cli import main
from kinkgrad.nn.cli import parser as train_parser

ROOT = Path(__file__).resolve().parents[1]
REST = re.compile(r"``|:(func|class|mod|meth|data):`")


def test_every_train_option_has_help_and_its_default():
    p = train_parser()
    text = p.format_help()
    for action in p._actions:
        if action.dest == "help":
            continue
        assert action.help, f"--{action.dest} has no help text"
        if not isinstance(action, argparse._StoreTrueAction):
            assert f"(default: {action.default}" in " ".join(text.split()), action.dest
    flat = " ".join(text.split())
    assert "(default: 15)" in flat and "(default: digits)" in flat  # --epochs, --dataset


@pytest.mark.parametrize("cmd", ["info", "train", "reproduce", "hardness", "minimize"])
def test_no_help_text_prints_rest_markup(cmd, capsys):
    try:
        code = main([cmd, "--help"])
    except SystemExit as exit_:  # argparse's --help
        code = exit_.code
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kinkgrad") and not REST.search(out), out


def test_reproduce_quick_time_claims_agree():
    readme = (ROOT / "README.md").read_text()
    from kinkgrad.reproduce import _parse

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        _parse(["--help"])
    help_claim = re.search(r"about (\d+) minutes?", " ".join(buf.getvalue().split()))
    readme_claim = re.search(r"`--quick` takes about (\d+) minutes?", " ".join(readme.split()))
    assert help_claim and readme_claim and help_claim.group(1) == readme_claim.group(1)


class _Log(io.StringIO):
    def isatty(self) -> bool:  # a file or a pipe
        return False


def test_nested_bars_in_a_log_write_plain_lines():
    log = _Log()
    outer = _progress.bar(["a", "b", "c"], desc="reproduce", unit="experiment", stream=log,
                          lines="step")
    for name in outer:
        outer.set_postfix_str(name)
        for _ in _progress.bar(range(50), desc="inner", leave=False, stream=log):
            pass
    epoch = _progress.bar(total=45, desc="epoch 1/2", unit="batch", stream=log)
    for _ in range(45):
        epoch.update(1)
        epoch.set_postfix(loss="0.1234", kinks=0)
    epoch.close()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert [ln.split(" (")[0] for ln in lines] == [
        "reproduce: 1/3 experiment, a", "reproduce: 2/3 experiment, b",
        "reproduce: 3/3 experiment, c", "epoch 1/2: 45/45 batch, loss=0.1234, kinks=0"]


def test_bars_on_a_terminal_are_tqdm_and_disabled_ones_are_nothing():
    class _Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    pytest.importorskip("tqdm")
    b = _progress.bar(total=3, desc="x", stream=_Tty())
    assert type(b).__name__ == "tqdm"
    b.close()
    assert _progress.bar(total=3, enabled=False) is None
    assert _progress.bar([1, 2], enabled=False) == [1, 2]


def test_kinkgrad_train_writes_plain_lines_to_a_pipe():
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from kinkgrad.cli import main; sys.exit(main())",
         "train", "--dataset", "breast_cancer", "--epochs", "2", "--certify-every", "0"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    assert re.findall(r"^epoch (\d)/2: \d+/\d+ batch", proc.stderr, re.M) == ["1", "2"]


def test_python_dash_m_runs_the_command_line():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "kinkgrad", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "minimize" in out.stdout


def test_a_problem_size_beyond_memory_is_one_clear_error():
    import numpy as np
    import pytest

    import kinkgrad

    with pytest.raises(kinkgrad.KinkgradError, match="does not fit in memory"):
        kinkgrad.problems.get("maxq", 10**14)
    with pytest.raises(kinkgrad.KinkgradError, match="states every problem for n >= 2"):
        kinkgrad.problems.get("maxq", 1)
    assert np.isfinite(kinkgrad.problems.get("maxq", 2).x0).all()
