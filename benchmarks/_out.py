"""What the benchmark scripts share: their tables and rows written to the output folder."""

from __future__ import annotations

import json
import os


def write_outputs(out: str, name: str, text: str, rows: list[dict]) -> None:
    """``name.md`` (the table text) and ``name.jsonl`` (one JSON object per row) in out."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{name}.md"), "w") as fh:
        fh.write(text + "\n")
    with open(os.path.join(out, f"{name}.jsonl"), "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
