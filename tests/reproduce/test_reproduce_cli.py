"""`kinkgrad reproduce`: report, plots, summary, exit codes."""

from __future__ import annotations

import kinkgrad.reproduce as rp
from kinkgrad.cli import main as cli_main
from kinkgrad.reproduce import cheap
from kinkgrad.reproduce.common import Skipped
from kinkgrad.reproduce.report import markdown_table


def test_quick_cheap_writes_report_and_png(tmp_path, capsys):
    out = tmp_path / "rep"
    assert cli_main(["reproduce", "--quick", "--only", "cheap", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "## Cheap gradient principle, measured (`cheap`)" in report
    assert "![cheap: cheap_ratios](cheap_ratios.png)" in report
    assert "FAIL" not in report
    assert (out / "cheap_ratios.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "cheap" in printed and "report:" in printed


def test_unknown_experiment_is_an_error(tmp_path, capsys):
    assert rp.main(["--only", "cheap,nope", "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err


def test_an_unwritable_output_folder_is_an_error_before_any_experiment(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")  # a folder cannot be made below a file
    assert rp.main(["--only", "cheap", "--out", str(blocker / "out")]) == 2
    assert "cannot create the output folder" in capsys.readouterr().err


def test_failed_check_sets_exit_code(tmp_path, monkeypatch):
    def run(out_dir, quick=False):
        return [{"program": "x", "backward_ratio": 9.0, "bound": 5.0,
                 "status": "FAIL: backward_ratio 9 > bound 5"}]

    monkeypatch.setattr(cheap, "run", run)
    monkeypatch.setattr(cheap, "headline", lambda rows: "bad")
    monkeypatch.setattr(cheap, "notes", lambda rows: "")
    assert rp.main(["--only", "cheap", "--out", str(tmp_path)]) == 1
    report = (tmp_path / "report.md").read_text()
    assert "| cheap | FAIL | 0/1 |" in report


def test_skipped_experiment_is_reported_not_failed(tmp_path, monkeypatch):
    def run(out_dir, quick=False):
        raise Skipped("module X is missing")

    monkeypatch.setattr(cheap, "run", run)
    assert rp.main(["--only", "cheap", "--out", str(tmp_path)]) == 0
    assert "**Skipped:** module X is missing" in (tmp_path / "report.md").read_text()


def test_markdown_table_formats_cells():
    md = markdown_table([{"a": 1234567, "b": 0.000123456, "c": None, "table": "t"},
                         {"a": 3, "b": 2.5, "c": "x|y"}])
    lines = md.splitlines()
    assert lines[0] == "| a | b | c |"
    assert lines[2] == "| 1,234,567 | 1.235e-04 | - |"
    assert lines[3] == "| 3 | 2.5 | x\\|y |"
