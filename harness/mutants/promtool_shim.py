"""`promtool` for the fast tier's runs of a rule mutant (run as a script, never imported).

`promtool test rules FILE...` runs only the test groups of FILE named in
CRM_MUTANTS_PROMTOOL_GROUPS (JSON: test file name -> group names; a file it does not name runs in
full): the groups that check the mutated rule or a rule or alert built on it
(harness/mutants/selection.py). A group that checks none of them cannot see the mutant, and the
alert tests take 4 s in full. Everything else goes to the real promtool
(CRM_MUTANTS_REAL_PROMTOOL) unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml


def main() -> int:
    real = os.environ["CRM_MUTANTS_REAL_PROMTOOL"]
    selection = os.environ.get("CRM_MUTANTS_PROMTOOL_GROUPS")
    args = sys.argv[1:]
    if selection is None or args[:2] != ["test", "rules"]:
        os.execv(real, [real, *args])
    keep = json.loads(selection)
    with tempfile.TemporaryDirectory(prefix="promtool-selection-") as scratch:
        files = []
        for name in args[2:]:
            path = Path(name).resolve()
            if path.name not in keep:  # a test file of its own (a sharper test's): in full
                files.append(str(path))
                continue
            test = yaml.safe_load(path.read_text())
            test["rule_files"] = [
                str((path.parent / rule).resolve()) for rule in test["rule_files"]
            ]
            test["tests"] = [
                g for g in test.get("tests") or [] if g["name"] in keep.get(path.name, [])
            ]
            selected = Path(scratch) / path.name
            selected.write_text(yaml.safe_dump(test, sort_keys=False))
            files.append(str(selected))
        result = subprocess.run([real, "test", "rules", *files], check=False)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
