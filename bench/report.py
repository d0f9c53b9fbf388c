#!/usr/bin/python3
"""Assembles the benchmarks' results into DESIGN.md's results file and renders it.

    report.py assemble TMPDIR OUT.json SECONDS   (bench/run.sh: every scenario's JSON in
                                                  TMPDIR; writes OUT.json, OUT.md and the
                                                  charts OUT-ratios.svg, OUT-rates.svg)
    report.py render RESULTS.json                (the .md and .svg of an existing file)

With BENCH_MERGE=<an earlier results file>, the sections this run did not measure are
taken from that file (each section records the run it came from in machine.sections), so
a scenario measured again on a quieter machine replaces only its own section. Every
ratio is computed inside one scenario's run, never across runs.
"""
import html
import json
import os
import platform
import subprocess
import sys
import time


def part(tmp, name):
    p = os.path.join(tmp, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None


def load_of(tmp, name):
    p = os.path.join(tmp, name + ".load")
    if not os.path.exists(p):
        return None
    rows = [list(map(float, line.split())) for line in open(p) if line.strip()]
    secs = os.path.join(tmp, name + ".secs")
    return {"before": rows[0] if rows else None, "after": rows[1] if len(rows) > 1 else None,
            "seconds": int(open(secs).read()) if os.path.exists(secs) else None}


def pick(d, keys):
    return {k: d.get(k) for k in keys} if d else None


INGEST_KEYS = ["batch_events_per_s", "single_events_per_s", "storage_limit_events_per_s",
               "trivial_handler_req_per_s", "batch_ratio", "single_ratio"]
GROWN_KEYS = ["events_before", "batch_events_per_s", "single_events_per_s",
              "storage_limit_events_per_s", "batch_ratio", "single_ratio"]


def ingest_section(fresh, grown):
    if fresh is None and grown is None:
        return None
    out = dict(fresh or {})
    for k in INGEST_KEYS:
        out.setdefault(k, None)
    if grown is not None:
        g = {k: v for k, v in grown.items() if k != "reads"}
        for k in GROWN_KEYS:
            g.setdefault(k, None)
        out["grown"] = g
    else:
        out["grown"] = {k: None for k in GROWN_KEYS}
    return out


def _empty(d, skip=()):
    return all(v is None for k, v in (d or {}).items() if k not in skip)


def merge_base(report, sections, base, base_run):
    """Fills what this run did not measure from an earlier results file (BENCH_MERGE): whole
    sections, and within ingest (fresh and grown, per database) and webhook (SQLite and
    PostgreSQL) the scenario that was not re-run. sections records which run each came from."""
    msec = base.get("machine", {}).get("sections", {})
    for key in ("ingest", "webhook", "s3", "alerting", "backlog", "reads", "scaleout"):
        if key not in base:
            continue
        if key not in report:
            report[key] = base[key]
            sections[key] = msec.get(key, base_run)
            for n, v in msec.items():  # and where its parts came from
                if n.startswith(key + "."):
                    sections[n] = v
            continue
        if key == "ingest":
            for db, old in base["ingest"].items():
                new = report["ingest"].get(db)
                if new is None:
                    report["ingest"][db] = old
                    sections[f"ingest.{db}"] = msec.get(f"ingest.{db}", base_run)
                    if f"ingest.{db}.grown" in msec:
                        sections[f"ingest.{db}.grown"] = msec[f"ingest.{db}.grown"]
                    continue
                if _empty(new.get("grown")) and not _empty(old.get("grown")):
                    new["grown"] = old["grown"]
                    sections[f"ingest.{db}.grown"] = msec.get(
                        f"ingest.{db}.grown", msec.get(f"ingest.{db}", base_run))
                if _empty(new, skip=("grown", "database")) and \
                        not _empty(old, skip=("grown", "database")):
                    # Only the grown database was measured now: it keeps this run's label.
                    sections.setdefault(f"ingest.{db}.grown", sections.get(f"ingest.{db}"))
                    report["ingest"][db] = dict(old, grown=new.get("grown"))
                    sections[f"ingest.{db}"] = msec.get(f"ingest.{db}", base_run)
        elif key == "webhook":
            new, old = report["webhook"], base["webhook"]
            if new.get("postgres") is None and old.get("postgres") is not None:
                new["postgres"] = old["postgres"]
                sections["webhook.postgres"] = msec.get(
                    "webhook.postgres", msec.get("webhook", base_run))
            if _empty(new, skip=("postgres",)) and not _empty(old, skip=("postgres",)):
                report["webhook"] = dict(old, postgres=new.get("postgres"))
                sections["webhook.sqlite"] = msec.get(
                    "webhook.sqlite", msec.get("webhook", base_run))
            else:  # a partial run (--latency-only): what it did not measure stays
                for k, v in old.items():
                    if k != "postgres" and new.get(k) is None and v is not None:
                        new[k] = v
                pn, po = new.get("postgres"), old.get("postgres")
                if pn is not None and po is not None:
                    for k, v in po.items():
                        if pn.get(k) is None and v is not None:
                            pn[k] = v
    for n, v in base.get("machine", {}).get("load_average", {}).items():
        report["machine"]["load_average"].setdefault(n, v)


def assemble(tmp, out_path, secs):
    run_at = os.path.basename(out_path).rsplit(".", 1)[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    names = ["ingest", "ingest_pg", "grown", "grown_pg", "reads", "webhook", "webhook_pg", "s3",
             "alerting", "backlog", "scaleout"]
    loads = {n: load_of(tmp, n) for n in names if load_of(tmp, n)}
    report = {
        "machine": {"cpus": os.cpu_count(), "cpu": model, "kernel": platform.release(),
                    "memory_gb": round(mem_kb / 1048576, 1),
                    "load_average": loads,
                    "note": "shared machine: the load average (1, 5, 15 min) before and after "
                            "each scenario; its ratios are measured inside that scenario",
                    "bench_seconds": secs},
        "commit": commit + ("-dirty" if dirty else ""),
    }
    sections = {}
    g = part(tmp, "grown")
    report["ingest"] = {}
    for db, fresh, grown in (("sqlite", "ingest", "grown"), ("postgres", "ingest_pg",
                                                             "grown_pg")):
        s = ingest_section(part(tmp, fresh), part(tmp, grown))
        if s is not None:
            report["ingest"][db] = s
            sections[f"ingest.{db}"] = run_at
    wh, whp = part(tmp, "webhook"), part(tmp, "webhook_pg")
    if wh or whp:
        report["webhook"] = dict(wh or {})
        report["webhook"]["postgres"] = pick(whp, ["events_per_s", "lifecycle_limit_events_per_s",
                                                   "lifecycle_ratio", "p99_ms"]) if whp else None
        if whp:
            report["webhook"]["postgres"]["details"] = whp
        sections["webhook"] = run_at
    for name in ("s3", "alerting", "backlog", "scaleout"):
        p = part(tmp, name)
        if p is not None:
            report[name] = p
            sections[name] = run_at
    reads = (g or {}).get("reads") or (part(tmp, "reads") or {}).get("reads")
    if reads is None and part(tmp, "reads"):
        reads = part(tmp, "reads")  # an error
    if reads is not None:
        report["reads"] = reads
        sections["reads"] = run_at
    merge = os.environ.get("BENCH_MERGE")
    if merge:
        merge_base(report, sections, json.load(open(merge)),
                   os.path.basename(merge).rsplit(".", 1)[0])
    report["machine"]["sections"] = sections
    report["targets"] = targets(report)
    with open(out_path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    render(out_path, report)
    print(json.dumps(report["targets"], indent=1))
    print("written to", out_path)


def get(d, path):
    for k in path.split("."):
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def targets(r):
    """Every DESIGN.md target: (what, figure, limit it is a ratio to, ratio, target, met)."""
    t = []

    def ratio(name, fig, lim, rat, want, unit="events/s"):
        v = get(r, rat)
        t.append({"target": name, "figure": get(r, fig), "limit": get(r, lim) if lim else None,
                  "unit": unit, "ratio": v, "want": want,
                  "met": None if v is None else v >= want})

    for db in ("sqlite", "postgres"):
        b = f"ingest.{db}"
        ratio(f"{db}: batched ingest / storage limit", f"{b}.batch_events_per_s",
              f"{b}.storage_limit_events_per_s", f"{b}.batch_ratio", 0.8)
        ratio(f"{db}: single events / storage limit", f"{b}.single_events_per_s",
              f"{b}.storage_limit_events_per_s", f"{b}.single_ratio", 0.5)
        ratio(f"{db} at 1M events: batched / storage limit (same size)",
              f"{b}.grown.batch_events_per_s", f"{b}.grown.storage_limit_events_per_s",
              f"{b}.grown.batch_ratio", 0.8)
        ratio(f"{db} at 1M events: single / storage limit (same size)",
              f"{b}.grown.single_events_per_s", f"{b}.grown.storage_limit_events_per_s",
              f"{b}.grown.single_ratio", 0.5)
    w_ratio, w_life = get(r, "webhook.ratio"), get(r, "webhook.lifecycle_ratio")
    t.append({"target": "sqlite: webhook delivery / wrk raw POST (≥ 0.5) or / lifecycle limit "
                        "(≥ 0.8)", "figure": get(r, "webhook.events_per_s"),
              "limit": get(r, "webhook.lifecycle_limit_events_per_s"), "unit": "events/s",
              "ratio": w_life, "ratio_wrk": w_ratio, "want": 0.8,
              "met": None if w_ratio is None and w_life is None else
              (w_ratio or 0) >= 0.5 or (w_life or 0) >= 0.8})
    ratio("postgres: webhook delivery / lifecycle limit", "webhook.postgres.events_per_s",
          "webhook.postgres.lifecycle_limit_events_per_s", "webhook.postgres.lifecycle_ratio",
          0.8)
    for path, name in (
            ("webhook.p99_ms", "sqlite: webhook p99 publish to receipt at 1,000/s"),
            ("webhook.latency_max_in_flight_16.p99_ms",
             "sqlite: the same with max_in_flight 16 (the default)"),
            ("webhook.postgres.p99_ms", "postgres: webhook p99 publish to receipt at 1,000/s"),
            ("webhook.postgres.details.latency_max_in_flight_16.p99_ms",
             "postgres: the same with max_in_flight 16 (the default)"),
            ("webhook.postgres.details.latency_cross_node.p99_ms",
             "postgres, across nodes (publish on one, delivery by another): p99 at 1,000/s"),
            ("webhook.postgres.details.latency_cross_node_max_in_flight_16.p99_ms",
             "postgres, across nodes: the same with max_in_flight 16")):
        v = get(r, path)
        t.append({"target": name, "figure": v, "unit": "ms", "want": "≤ 25",
                  "met": None if v is None else v <= 25})
    ratio("S3 MB/s / curl PUT", "s3.mb_per_s", "s3.curl_put_mb_per_s", "s3.ratio", 0.5, "MB/s")
    ratio("alerting / alert storage limit", "alerting.alerts_per_s",
          "alerting.storage_limit_alerts_per_s", "alerting.storage_ratio", 0.8, "alerts/s")
    ratio("alerting / Alertmanager", "alerting.alerts_per_s", "alerting.alertmanager_alerts_per_s",
          "alerting.ratio", 1.0, "alerts/s")
    rss, am = get(r, "alerting.rss_mb"), get(r, "alerting.alertmanager_rss_mb")
    t.append({"target": "alerting RSS / Alertmanager's", "figure": rss, "limit": am,
              "unit": "MB", "ratio": round(rss / am, 3) if rss and am else None, "want": "≤ 0.25",
              "met": None if not (rss and am) else rss / am <= 0.25})
    v = get(r, "backlog.rss_mb")
    t.append({"target": "1M pending: RSS", "figure": v, "unit": "MB", "want": "< 256",
              "met": None if v is None else v < 256})
    v = get(r, "backlog.restart_to_first_delivery_s")
    t.append({"target": "1M pending: restart to first delivery", "figure": v, "unit": "s",
              "want": "< 5", "met": None if v is None else v < 5})
    v = get(r, "reads.slowest_ms")
    t.append({"target": "console reads at 1M events: slowest", "figure": v, "unit": "ms",
              "path": get(r, "reads.slowest_path"), "want": "≤ 50",
              "met": None if v is None else v <= 50})
    ratio("scale-out: 3 nodes / 1 node", "scaleout.events_per_s_3_nodes",
          "scaleout.events_per_s_1_node", "scaleout.ratio_3_to_1", 2.5)
    v = get(r, "scaleout.failover_s")
    if v is not None:
        t.append({"target": "scale-out: SIGKILL of a node to the first redelivery of its work",
                  "figure": v, "unit": "s", "want": "≤ 15 (--node-timeout 10 s + 5 s)",
                  "met": v <= 15})
    return t


def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.3f}" if v < 10 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def render(path, report=None):
    report = report or json.load(open(path))
    base = path[:-5] if path.endswith(".json") else path
    rows = report.get("targets") or targets(report)
    m = report.get("machine", {})
    lines = [f"# Benchmark results {os.path.basename(base)}", "",
             f"Commit `{report.get('commit')}`; {m.get('cpus')} × {m.get('cpu')}, "
             f"{m.get('memory_gb')} GB, kernel {m.get('kernel')}; each measurement "
             f"{m.get('bench_seconds')} s. Ratios are taken inside one scenario's run.", "",
             "| target | figure | limit | ratio | wanted | met |", "|---|---:|---:|---:|---:|:-:|"]
    for t in rows:
        fig = fmt(t.get("figure"))
        if t.get("unit") and t.get("figure") is not None:
            fig += " " + t["unit"]
        lim = fmt(t.get("limit")) if t.get("limit") is not None else ""
        rat = fmt(t.get("ratio")) if t.get("ratio") is not None else ""
        if t.get("ratio_wrk") is not None:
            rat += f" (wrk: {fmt(t['ratio_wrk'])})"
        want = t["want"] if isinstance(t["want"], str) else f"≥ {t['want']}"
        met = {True: "yes", False: "**no**", None: "—"}[t.get("met")]
        lines.append(f"| {t['target']} | {fig} | {lim} | {rat} | {want} | {met} |")
    reads = report.get("reads") or {}
    if reads.get("paths"):
        lines += ["", f"Console reads with {fmt(reads.get('events_before'))} events "
                      "(median of 5, ms):", "", "| path | ms |", "|---|---:|"]
        for p, ms in sorted(reads["paths"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| `{p}` | {ms} |")
    loads = m.get("load_average") or {}
    if loads:
        lines += ["", "Load average (1, 5, 15 min) before → after each scenario:", "",
                  "| scenario | before | after | seconds |", "|---|---|---|---:|"]
        for n, v in loads.items():
            lines.append(f"| {n} | {v.get('before')} | {v.get('after')} | {v.get('seconds')} |")
    lines += ["", f"Charts: [ratios]({os.path.basename(base)}-ratios.svg), "
                  f"[rates]({os.path.basename(base)}-rates.svg).", ""]
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines))
    ratio_rows = [t for t in rows if isinstance(t.get("ratio"), (int, float))
                  and isinstance(t.get("want"), (int, float))]
    with open(base + "-ratios.svg", "w") as f:
        f.write(bars("Each figure as a fraction of its limit (line: the target)",
                     [(t["target"], t["ratio"], t["want"], t.get("met")) for t in ratio_rows]))
    rate_rows = [t for t in rows if isinstance(t.get("figure"), (int, float))
                 and isinstance(t.get("limit"), (int, float)) and t.get("unit") != "MB"]
    with open(base + "-rates.svg", "w") as f:
        f.write(pairs("Sluice (dark) next to the limit measured in the same run (light)",
                      [(t["target"], t["figure"], t["limit"], t.get("unit", "")) for t in
                       rate_rows]))


def bars(title, rows):
    w, lw, bw, rh = 960, 470, 420, 24
    h = 50 + rh * len(rows) + 30
    top = max([1.0] + [r[1] for r in rows] + [r[2] for r in rows]) * 1.05
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
         f'font-family="sans-serif" font-size="12">',
         f'<text x="10" y="22" font-size="15" font-weight="bold">{html.escape(title)}</text>']
    for i, (label, v, want, met) in enumerate(rows):
        y = 40 + i * rh
        color = "#2e7d32" if met else "#c62828"
        s.append(f'<text x="{lw - 8}" y="{y + 15}" text-anchor="end">{html.escape(label)}</text>')
        s.append(f'<rect x="{lw}" y="{y + 3}" width="{bw * v / top:.1f}" height="{rh - 8}" '
                 f'fill="{color}"/>')
        x = lw + bw * want / top
        s.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + rh}" stroke="#000" '
                 'stroke-width="2"/>')
        s.append(f'<text x="{lw + bw * v / top + 4:.1f}" y="{y + 15}">{v:.2f}</text>')
    s.append("</svg>\n")
    return "\n".join(s)


def pairs(title, rows):
    w, lw, bw, rh = 960, 470, 380, 34
    h = 50 + rh * len(rows) + 20
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
         f'font-family="sans-serif" font-size="12">',
         f'<text x="10" y="22" font-size="15" font-weight="bold">{html.escape(title)}</text>']
    for i, (label, fig, lim, unit) in enumerate(rows):
        y = 40 + i * rh
        top = max(fig, lim) * 1.05 or 1
        s.append(f'<text x="{lw - 8}" y="{y + 18}" text-anchor="end">{html.escape(label)}</text>')
        s.append(f'<rect x="{lw}" y="{y + 2}" width="{bw * fig / top:.1f}" height="12" '
                 'fill="#1565c0"/>')
        s.append(f'<rect x="{lw}" y="{y + 16}" width="{bw * lim / top:.1f}" height="12" '
                 'fill="#90caf9"/>')
        s.append(f'<text x="{lw + bw * fig / top + 4:.1f}" y="{y + 13}">{fmt(fig)} {unit}</text>')
        s.append(f'<text x="{lw + bw * lim / top + 4:.1f}" y="{y + 27}">{fmt(lim)}</text>')
    s.append("</svg>\n")
    return "\n".join(s)


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "assemble":
        assemble(sys.argv[2], sys.argv[3], int(float(sys.argv[4])))
    elif len(sys.argv) == 3 and sys.argv[1] == "render":
        render(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "merge":
        # merge NEW BASE: fills what NEW did not measure from BASE, rewrites NEW and its table
        with open(sys.argv[2]) as f:
            rep = json.load(f)
        secs = rep.setdefault("machine", {}).setdefault("sections", {})
        rep["machine"].setdefault("load_average", {})
        with open(sys.argv[3]) as f:
            merge_base(rep, secs, json.load(f), os.path.basename(sys.argv[3]).rsplit(".", 1)[0])
        rep["targets"] = targets(rep)
        with open(sys.argv[2], "w") as f:
            json.dump(rep, f, indent=2)
            f.write("\n")
        render(sys.argv[2], rep)
    else:
        sys.exit(__doc__)
