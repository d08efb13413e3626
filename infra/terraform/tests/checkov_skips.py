#!/usr/bin/env python3
"""Keeps the inline checkov skips honest.

    python3 checkov_skips.py TF_DIR RESULTS.json

RESULTS.json is checkov's JSON output for a copy of TF_DIR with every `#checkov:skip` comment
removed. Every skip in TF_DIR must match a finding there (same check, same resource): a skip
whose check no longer fires is stale and must go. Every skip must also give a reason.
Prints one PASS/FAIL line per rule; exits 1 on a failure.
"""

import glob
import json
import os
import re
import sys

BLOCK = re.compile(r'^(resource|data)\s+"([^"]+)"\s+"([^"]+)"')
SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def inline_skips(tf_dir):
    """[(file, line, check id, resource address, reason)]"""
    found = []
    for path in sorted(glob.glob(os.path.join(tf_dir, "*.tf"))):
        current = None
        with open(path) as f:
            for n, line in enumerate(f, 1):
                m = BLOCK.match(line)
                if m:
                    kind, rtype, name = m.groups()
                    current = ("data." if kind == "data" else "") + "%s.%s" % (rtype, name)
                s = SKIP.search(line)
                if s:
                    found.append((os.path.basename(path), n, s.group(1), current, (s.group(2) or "").strip()))
    return found


def findings(results_path):
    with open(results_path) as f:
        data = json.load(f)
    reports = data if isinstance(data, list) else [data]
    out = set()
    for report in reports:
        for c in report.get("results", {}).get("failed_checks", []):
            resource = re.sub(r"\[.*\]$", "", c["resource"])
            out.add((c["check_id"], resource))
            # checkov names data sources without the "data." prefix
            out.add((c["check_id"], "data." + resource))
    return out


def main(tf_dir, results_path):
    skips = inline_skips(tf_dir)
    fired = findings(results_path)
    failed = 0

    no_reason = ["%s:%d %s" % (f, n, cid) for f, n, cid, _res, reason in skips if len(reason) < 20]
    if no_reason:
        failed += 1
        print("FAIL: checkov: every inline skip gives a reason: %s" % ", ".join(no_reason))
    else:
        print("PASS: checkov: every inline skip gives a reason (%d skips)" % len(skips))

    stale = ["%s:%d %s on %s" % (f, n, cid, res) for f, n, cid, res, _r in skips if (cid, res) not in fired]
    if stale:
        failed += 1
        print("FAIL: checkov: every inline skip is still needed: stale: %s" % "; ".join(stale))
    else:
        print("PASS: checkov: every inline skip is still needed")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: checkov_skips.py TF_DIR RESULTS.json")
    sys.exit(main(sys.argv[1], sys.argv[2]))
