#!/usr/bin/env python3
"""Static checks of infra/monitoring, run by scripts/tests.d/monitoring.sh (needs PyYAML:
Debian's python3-yaml, in scripts/lib.sh APT_PACKAGES).

  check.py coverage RULES.yml TESTS.yml
      every alert of RULES has a `promtool test rules` case in TESTS where it fires and one
      where it is expected quiet (exp_alerts: [])
  check.py dashboard DASHBOARD.json OUT.yml
      the dashboard is Grafana JSON with what an import needs (title, uid, unique panel ids,
      grid positions, the datasource variable on every query); every PromQL expression is
      written to OUT.yml as a recording rule, for `promtool check rules` to parse
  check.py names ROOT RULES.yml DASHBOARD.json MTAIL_PROGRAM
      every metric the rules and the dashboard use is one that something exports: the
      services (metric names in the Rust sources under ROOT), the edge's mtail program,
      prometheus-nginx-exporter, or Prometheus itself

Each prints one line per problem and exits 1 if there is any.
"""
import json
import pathlib
import re
import sys

import yaml

# Grafana's variables, replaced by something PromQL accepts before parsing.
GRAFANA_VARS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${__rate_interval}": "5m",
    "${__interval}": "1m",
    "${__range}": "1h",
}

# prometheus-nginx-exporter 0.11 over stub_status (checked against the running exporter by
# monitoring.sh), and the series Prometheus makes itself.
NGINX_EXPORTER = {
    "nginx_up", "nginx_connections_accepted", "nginx_connections_active",
    "nginx_connections_handled", "nginx_connections_reading", "nginx_connections_waiting",
    "nginx_connections_writing", "nginx_http_requests_total",
}
PROMETHEUS = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}

PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2", "le",
}


def fail(problems):
    for p in problems:
        print(f"FAIL: {p}")
    return 1 if problems else 0


def alerts_of(rules_path):
    doc = yaml.safe_load(pathlib.Path(rules_path).read_text())
    out = []
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                out.append(rule)
    return out


def coverage(rules_path, tests_path):
    alerts = [r["alert"] for r in alerts_of(rules_path)]
    tests = yaml.safe_load(pathlib.Path(tests_path).read_text())
    fires, quiet = set(), set()
    problems = []
    for t in tests.get("tests") or []:
        for check in t.get("alert_rule_test") or []:
            name = check.get("alertname")
            if not name:
                problems.append(f"an alert_rule_test without alertname in {tests_path}")
                continue
            if check.get("exp_alerts"):
                fires.add(name)
            else:
                quiet.add(name)
    for a in alerts:
        if a not in fires:
            problems.append(f"alert {a} has no test where it fires")
        if a not in quiet:
            problems.append(f"alert {a} has no test where it stays quiet (exp_alerts: [])")
    for a in (fires | quiet) - set(alerts):
        problems.append(f"the tests name {a}, which is no alert of {rules_path}")
    if not problems:
        print(f"coverage: {len(alerts)} alerts, each tested firing and quiet")
    return fail(problems)


def dashboard_exprs(dash):
    """(panel title, expr) of every query, rows' nested panels included."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"], t, p))
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    return out


def promql_for_check(expr):
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    return expr


def dashboard(path, out_path):
    problems = []
    try:
        dash = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as e:
        return fail([f"{path} is not JSON: {e}"])
    for key in ("title", "uid", "panels", "schemaVersion"):
        if key not in dash:
            problems.append(f"dashboard has no {key}")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", str(dash.get("uid", ""))):
        problems.append(f"dashboard uid {dash.get('uid')!r} is not a valid Grafana uid")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("dashboard has no `datasource` variable of type datasource (prometheus)")
    ids = []

    def walk(panels):
        for p in panels:
            ids.append(p.get("id"))
            gp = p.get("gridPos", {})
            if not all(isinstance(gp.get(k), int) for k in ("h", "w", "x", "y")) or gp.get("x", 0) + gp.get("w", 0) > 24:
                problems.append(f"panel {p.get('title')!r}: bad gridPos {gp}")
            if p.get("type") != "row":
                if not p.get("targets"):
                    problems.append(f"panel {p.get('title')!r} has no query")
                for t in p.get("targets", []):
                    if (t.get("datasource") or p.get("datasource") or {}).get("uid") != "${datasource}":
                        problems.append(f"panel {p.get('title')!r}: a query not on the ${{datasource}} variable")
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    if len(ids) != len(set(ids)) or None in ids:
        problems.append("panel ids are missing or not unique")
    exprs = dashboard_exprs(dash)
    if not exprs:
        problems.append("dashboard has no PromQL expression")
    for title, expr, _, _ in exprs:
        if re.search(r"\$(?!__)", promql_for_check(expr)):
            problems.append(f"panel {title!r}: unknown Grafana variable in {expr}")
    rules = [{"record": f"dashboard:expr_{i}", "expr": promql_for_check(e)} for i, (_, e, _, _) in enumerate(exprs)]
    pathlib.Path(out_path).write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, sort_keys=False))
    if not problems:
        print(f"dashboard: {len(ids)} panels, {len(exprs)} PromQL expressions written to {out_path}")
    return fail(problems)


def metric_names(expr):
    """Metric names an expression selects (no PromQL parser: strings, label matchers, ranges,
    grouping clauses and function names are taken out first)."""
    names = set()
    for m in re.finditer(r'__name__\s*=~?\s*"([^"]*)"', expr):
        names.update(n for n in m.group(1).split("|") if n)
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+\S+", " ", s)
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def exported_names(root, mtail_program):
    names = set(NGINX_EXPORTER) | set(PROMETHEUS)
    histograms = set()
    for path in pathlib.Path(root).rglob("*.rs"):
        if "target" in path.parts or "node_modules" in path.parts:
            continue
        text = path.read_text(errors="replace")
        for kind, name in re.findall(r'\b(counter|gauge|histogram)!\(\s*"([A-Za-z_:][A-Za-z0-9_:]*)"', text):
            names.add(name)
            if kind == "histogram":
                histograms.add(name)
        # service_kit::track_http: {prefix}_http_requests_total, {prefix}_http_request_duration_seconds
        for prefix in re.findall(r'from_fn_with_state\(\s*"([a-z_]+)",\s*service_kit::track_http', text):
            names.add(f"{prefix}_http_requests_total")
            histograms.add(f"{prefix}_http_request_duration_seconds")
    for line in pathlib.Path(mtail_program).read_text().splitlines():
        m = re.match(r"\s*(counter|gauge|histogram)\s+([A-Za-z_:][A-Za-z0-9_:]*)", line)
        if m:
            names.add(m.group(2))
            if m.group(1) == "histogram":
                histograms.add(m.group(2))
    for h in histograms:
        # metrics-exporter-prometheus renders a histogram without buckets as a summary
        # (NAME{quantile}, NAME_sum, NAME_count); mtail as a histogram (NAME_bucket{le}).
        names.update({h, f"{h}_sum", f"{h}_count", f"{h}_bucket"})
    return names


def names(root, rules_path, dashboard_path, mtail_program):
    known = exported_names(root, mtail_program)
    used = {}
    for rule in alerts_of(rules_path):
        for n in metric_names(rule["expr"]):
            used.setdefault(n, set()).add(f"alert {rule['alert']}")
    dash = json.loads(pathlib.Path(dashboard_path).read_text())
    for title, expr, _, _ in dashboard_exprs(dash):
        for n in metric_names(promql_for_check(expr)):
            used.setdefault(n, set()).add(f"panel {title!r}")
    problems = [f"{n} (used by {', '.join(sorted(where))}) is exported by nothing known"
                for n, where in sorted(used.items()) if n not in known]
    if not problems:
        print(f"names: {len(used)} metric names used by the rules and the dashboard, all exported")
    return fail(problems)


def main(argv):
    cmds = {"coverage": (coverage, 2), "dashboard": (dashboard, 2), "names": (names, 4)}
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        print(__doc__)
        return 2
    fn, _ = cmds[argv[1]]
    return fn(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
