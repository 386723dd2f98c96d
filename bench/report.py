#!/usr/bin/env python3
"""bench/report.py RAWDIR [OUTDIR]: turn one bench/run result directory into
OUTDIR/latest.md and the plots OUTDIR/tps.png, OUTDIR/cpu.png (and OUTDIR/idle.png when
RAWDIR/idle.txt holds idleconns lines). OUTDIR defaults to bench/results.
Standard library only; plots through gnuplot (pngcairo). Re-run it on an old raw
directory to redraw a report: bench/report.py bench/results/raw/<time>."""
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys

RAW = sys.argv[1]
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "results")
PLOT = os.path.join(RAW, "plot")
os.makedirs(PLOT, exist_ok=True)
os.makedirs(OUT, exist_ok=True)

SCRIPT_NAME = {"select": "select-only (-S)", "tpcb": "TPC-B"}
TARGETS = ["direct", "pgbouncer", "pgring"]


def read_tsv(name):
    path = os.path.join(RAW, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


meta = {}
if os.path.exists(os.path.join(RAW, "meta.tsv")):
    for line in open(os.path.join(RAW, "meta.tsv")):
        k, _, v = line.rstrip("\n").partition("\t")
        meta[k] = v
runs = read_tsv("runs.tsv")
# Per-cell remarks: why a target did not run (unsupported rows carry it in "out"), and
# cells that ran with other pgbench settings (notes.tsv).
cell_notes = {}
for r in runs:
    if r["status"] == "unsupported" and r.get("out") not in (None, "", "-"):
        name = {"pgbouncer": "PgBouncer"}.get(r["target"], r["target"])
        cell_notes.setdefault((r["section"], r["mode"]), []).append(
            (r["script"], r["proto"], r["clients"], f"{name}: n/a, {r['out']}"))
for r in read_tsv("notes.tsv"):
    cell_notes.setdefault((r["section"], r["mode"]), []).append(
        (r["script"], r["proto"], r["clients"], r["note"]))
rss = read_tsv("rss.tsv")
timing = [l.rstrip("\n").split("\t") for l in open(os.path.join(RAW, "timing.tsv"))] \
    if os.path.exists(os.path.join(RAW, "timing.tsv")) else []


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


# ---- aggregation --------------------------------------------------------------------
KEY = ("section", "script", "mode", "proto", "clients", "connect", "target")
cells = {}
order = []
for r in runs:
    k = tuple(r[c] for c in KEY)
    if k not in cells:
        cells[k] = []
        order.append(k)
    cells[k].append(r)
peak = {}
for r in rss:
    peak[tuple(r[c] for c in KEY)] = (num(r["vmhwm_kb"]), num(r["vmrss_kb"]), r["pool"])


def agg(k):
    rs = cells.get(k)
    if not rs:
        return None
    if all(r["status"] == "unsupported" for r in rs):
        return {"status": "unsupported"}
    ok = [r for r in rs if r["status"] == "ok"]
    a = {"status": "ok" if ok else "fail", "n": len(rs), "ok": len(ok),
         "bad": sorted({r["status"] for r in rs if r["status"] != "ok"}),
         "pool": rs[0]["pool"]}
    for f in ("tps", "lat_avg_ms", "lat_p99_ms", "cpu_s_per_1k", "lat_max_ms", "client_min_mean", "conn_ms", "clients_starved"):
        v = [num(r.get(f)) for r in ok if num(r.get(f)) is not None]
        a[f] = (statistics.median(v), min(v), max(v)) if v else None
    p = peak.get(k)
    a["hwm_kb"] = p[0] if p else None
    return a


def fmt_tps(a, spread=True):
    if a is None:
        return "—"
    if a["status"] == "unsupported":
        return "n/a (unsupported)"
    if a["tps"] is None:
        return "fail" + (" (" + ",".join(a["bad"]) + ")" if a["bad"] else "")
    m, lo, hi = a["tps"]
    s = f"{m:,.0f}"
    if spread and a["ok"] > 1:
        s += f" ({lo:,.0f}–{hi:,.0f})"
    if a["ok"] < a["n"]:
        s += f" [{a['n'] - a['ok']}/{a['n']} {','.join(a['bad'])}]"
    return s


def fmt_med(a, f, nd=2):
    if a is None or a.get(f) is None:
        return "—" if a is None or a["status"] != "unsupported" else "n/a"
    return f"{a[f][0]:.{nd}f}"


def fmt_max(a):
    """The slowest transaction of the worst round."""
    if a is None or a.get("lat_max_ms") is None:
        return "—" if a is None or a["status"] != "unsupported" else "n/a"
    return f"{a['lat_max_ms'][2]:.1f}"


def fmt_fair(a):
    """The worst round's fairness, and the most starved clients in any round."""
    if a is None or a.get("client_min_mean") is None:
        return "—" if a is None or a["status"] != "unsupported" else "n/a"
    v = a["client_min_mean"][1]
    st = int(a["clients_starved"][2]) if a.get("clients_starved") else 0
    s = f"{v:.2f}"
    if st:
        s = f"**{s} ({st} starved)**"
    return s


def fmt_cpu(a):
    if a is None or a.get("cpu_s_per_1k") is None:
        return "—" if a is None or a["status"] != "unsupported" else "n/a"
    v = a["cpu_s_per_1k"][0]
    return f"{v:.3f}" if v >= 0.01 else f"{v:.4f}"


def fmt_rss(a):
    if a is None or a.get("hwm_kb") is None:
        return "—"
    return f"{a['hwm_kb'] / 1024:.1f}"


def ratio(a, b):
    if not a or not b or a.get("tps") is None or b.get("tps") is None or b["tps"][0] == 0:
        return "—"
    return f"{a['tps'][0] / b['tps'][0]:.2f}"


def uniq(vals):
    out = []
    for v in vals:
        if v not in out:
            out.append(v)
    return out


def direct_key(section, script, proto, clients, connect):
    return (section, script, "-", proto, clients, connect, "direct")


md = []
w = md.append
_root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
rawrel = os.path.relpath(os.path.abspath(RAW), _root)
if rawrel.startswith(".."):
    rawrel = os.path.abspath(RAW)
profile = "QUICK" if meta.get("set.QUICK") == "1" else "full"
w(f"# pgring benchmark ({profile} profile)")
w("")
w(f"Generated by `bench/run` on {meta.get('date', '?')}; command: `{meta.get('command', 'bench/run')}`; "
  f"took {int(num(meta.get('total_seconds')) or 0) // 60} min {int(num(meta.get('total_seconds')) or 0) % 60} s. "
  f"Raw data: `{rawrel}/` (not committed).")
w("")
w("| | |")
w("|---|---|")
for label, key in [("CPUs (nproc)", "nproc"), ("CPU model", "cpu"), ("kernel", "kernel"),
                   ("memory", "memory"), ("load average at start / end", None),
                   ("PostgreSQL", "postgres"), ("pgbench", "pgbench"), ("PgBouncer", "pgbouncer"),
                   ("pgring", None), ("valgrind / strace", None)]:
    if key:
        v = meta.get(key, "?")
    elif label.startswith("load"):
        v = f"{meta.get('loadavg_start', '?')} / {meta.get('loadavg_end', '?')}"
    elif label == "pgring":
        v = f"{meta.get('pgring', '?')}, git {meta.get('git', '?')}"
    else:
        v = f"{meta.get('valgrind', '?')} / {meta.get('strace', '?')}"
    w(f"| {label} | {v} |")
w("")
S = lambda k: meta.get("set." + k, "?")
w(f"Settings: pgbench scale {S('SCALE')}, `-j {S('THREADS')}`, {S('DURATION')} s per run after a "
  f"{S('WARMUP')} s warm-up per target, {S('REPEATS')} round(s) with the targets alternating "
  f"(order rotated every round); pool_size {S('POOL_SIZE')} in transaction mode, max(pool_size, clients) "
  f"in session mode; md5 authentication everywhere (client→pooler with a userlist.txt, pooler→server "
  f"and direct with an MD5-stored password); "
  + ("pgbench → pooler and pooler → PostgreSQL over Unix sockets (`SOCKETS=unix`: the poolers' server "
     "logins and direct ones are then trusted, no password), "
     if S('SOCKETS') == 'unix' else "everything on 127.0.0.1 ")
  + f"on this one machine, so pgbench, "
  f"PostgreSQL and the pooler share the {meta.get('nproc', '?')} CPUs. pgring runs with its default "
  f"shards (one per CPU) unless stated; PgBouncer is single-threaded.")
w("")
w("Cells: TPS = pgbench's, median of the rounds with (min–max) when there is more than one; "
  "latency avg / p99 = from pgbench's per-transaction logs (median over rounds); CPU = the pooler "
  "process's utime+stime (all threads, /proc/PID/stat) during the run, per 1000 transactions; peak RSS = "
  "the pooler's VmHWM, which is a lifetime peak: each pooler is started fresh for every cell, so it is the "
  "peak of that cell (warm-up + all its rounds). max ms = the slowest transaction of the worst round. "
  "fairness = transactions of the least-served client / the mean per client, worst round (every pgbench "
  "client runs the same script, so ~1 is even, ~0 is a client that hardly ran); \"k starved\" (bold) = in "
  "some round k clients completed less than a tenth of the mean (typically 1 transaction, finished only "
  "when the run ended). "
  "`[k/n fail]` = k of n runs failed (not in the median).")
w("")

# ---- summary: pgring against PgBouncer over every cell both ran --------------------------
def summary():
    pairs = []
    for k in order:
        if k[0] not in ("matrix", "storm") or k[6] != "pgring":
            continue
        g, b = agg(k), agg(k[:6] + ("pgbouncer",))
        if g and b and g.get("tps") and b.get("tps") and b["tps"][0] > 0:
            pairs.append((k, g, b))
    if not pairs:
        return
    def gmean(v):
        v = [x for x in v if x and x > 0]
        return statistics.geometric_mean(v) if v else None
    def label(k):
        return f"{SCRIPT_NAME.get(k[1], k[1])} {k[2]} {k[3]} c={k[4]}{' -C' if k[5] == '-C' else ''}"
    tps = [(g["tps"][0] / b["tps"][0], k) for k, g, b in pairs]
    cpu = [(g["cpu_s_per_1k"][0] / b["cpu_s_per_1k"][0], k) for k, g, b in pairs
           if g.get("cpu_s_per_1k") and b.get("cpu_s_per_1k") and b["cpu_s_per_1k"][0] > 0]
    w("## Summary: pgring / PgBouncer")
    w("")
    w(f"Over the {len(pairs)} cells (matrix and storms) where both ran; ratios of medians; "
      "pgring runs its default shards (one per CPU).")
    w("")
    w("| | geometric mean | min (cell) | max (cell) |")
    w("|---|--:|---|---|")
    for name, v in (("TPS", tps), ("pooler CPU per transaction", cpu)):
        if v:
            lo, hi = min(v), max(v)
            w(f"| {name} | {gmean([x for x, _ in v]):.2f} | {lo[0]:.2f} ({label(lo[1])}) | "
              f"{hi[0]:.2f} ({label(hi[1])}) |")
    below = [f"{label(k)} {r:.2f}" for r, k in tps if r < 0.95]
    w("")
    w("Cells where pgring's TPS is more than 5% below PgBouncer's: " + ("; ".join(below) if below else "none") + ".")
    w("")


summary()

# ---- matrix --------------------------------------------------------------------------
mat = [k for k in order if k[0] == "matrix"]
if mat:
    modes = [m for m in uniq(k[2] for k in mat) if m != "-"]
    w("## Throughput")
    w("")
    for mode in modes:
        w(f"### {mode} mode")
        w("")
        w("| workload | protocol | clients | direct | PgBouncer | pgring | pgring / PgBouncer |")
        w("|---|---|--:|--:|--:|--:|--:|")
        rows = uniq((k[1], k[3], k[4]) for k in mat if k[2] == mode)
        for script, proto, clients in rows:
            d = agg(direct_key("matrix", script, proto, clients, "-"))
            b = agg(("matrix", script, mode, proto, clients, "-", "pgbouncer"))
            g = agg(("matrix", script, mode, proto, clients, "-", "pgring"))
            w(f"| {SCRIPT_NAME.get(script, script)} | {proto} | {clients} | {fmt_tps(d)} | {fmt_tps(b)} | "
              f"{fmt_tps(g)} | {ratio(g, b)} |")
        w("")
        notes = {}
        for script, proto, clients, note in cell_notes.get(("matrix", mode), []):
            notes.setdefault(note, []).append(f"{SCRIPT_NAME.get(script, script)} {proto} c={clients}")
        for note, where in notes.items():
            w(f"- {', '.join(uniq(where))}: {note}.")
        if notes:
            w("")
        if mode != modes[0]:
            w("Direct PostgreSQL does not depend on the pool mode: its column repeats the runs "
              f"shown in the {modes[0]} mode table.")
            w("")
    w("## Latency and pooler cost")
    w("")
    w("| workload | mode | protocol | clients | target | TPS | avg ms | p99 ms | max ms | fairness | pooler CPU s / 1000 tx | peak RSS MiB |")
    w("|---|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|")
    sc, pr, mo = uniq(k[1] for k in mat), uniq(k[3] for k in mat), ["-"] + modes
    tix = lambda t: TARGETS.index(t) if t in TARGETS else len(TARGETS)
    for k in sorted(mat, key=lambda k: (sc.index(k[1]), pr.index(k[3]), int(k[4]), mo.index(k[2]), tix(k[6]))):
        a = agg(k)
        tname = {"pgbouncer": "PgBouncer"}.get(k[6], k[6])
        w(f"| {SCRIPT_NAME.get(k[1], k[1])} | {k[2]} | {k[3]} | {k[4]} | {tname} | {fmt_tps(a, False)} | "
          f"{fmt_med(a, 'lat_avg_ms')} | {fmt_med(a, 'lat_p99_ms')} | {fmt_max(a)} | "
          f"{fmt_fair(a)} | {fmt_cpu(a)} | {fmt_rss(a)} |")
    w("")

# ---- storms --------------------------------------------------------------------------
st = [k for k in order if k[0] == "storm"]
if st:
    w("## Connection storms (`pgbench -C`: a new connection per transaction)")
    w("")
    w("select-only, simple protocol; pool_size "
      f"{S('POOL_SIZE')} in both modes (each client leaves after one transaction, so session mode "
      "reuses servers too). TPS includes connection set-up; latencies do not (pgbench logs a "
      "transaction's time from after its connection is made); connect ms = pgbench's average connection "
      "time (median over rounds).")
    w("")
    w("| mode | clients | target | TPS | connect ms | avg ms | p99 ms | max ms | fairness | pooler CPU s / 1000 tx | peak RSS MiB |")
    w("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for k in st:
        a = agg(k)
        tname = {"pgbouncer": "PgBouncer"}.get(k[6], k[6])
        w(f"| {k[2]} | {k[4]} | {tname} | {fmt_tps(a)} | {fmt_med(a, 'conn_ms')} | {fmt_med(a, 'lat_avg_ms')} | "
          f"{fmt_med(a, 'lat_p99_ms')} | {fmt_max(a)} | {fmt_fair(a)} | "
          f"{fmt_cpu(a)} | {fmt_rss(a)} |")
    w("")

# ---- shards --------------------------------------------------------------------------
sh = [k for k in order if k[0] == "shards"]
if sh:
    def shard_label(t):
        m = re.match(r"pgring@(\d+)(?::([^+]*))?((?:\+[^+]+)*)$", t)
        if not m:
            return {"pgbouncer": "PgBouncer (reference)"}.get(t, t)
        s = f"pgring shards={m.group(1)}"
        s += f", pinned (shard_cpus={m.group(2)})" if m.group(2) else ", not pinned"
        return s + "".join(f", {kv}" for kv in m.group(3).split("+") if kv)
    k0 = sh[0]
    w("## pgring shards")
    w("")
    w(f"{SCRIPT_NAME.get(k0[1], k0[1])}, {k0[3]} protocol, {k0[2]} mode, pool_size {S('POOL_SIZE')}; "
      "every configuration started fresh for each client count.")
    w("")
    w("| clients | configuration | TPS | avg ms | p99 ms | max ms | fairness | pooler CPU s / 1000 tx | peak RSS MiB |")
    w("|--:|---|--:|--:|--:|--:|--:|--:|--:|")
    for k in sh:
        a = agg(k)
        w(f"| {k[4]} | {shard_label(k[6])} | {fmt_tps(a)} | {fmt_med(a, 'lat_avg_ms')} | {fmt_med(a, 'lat_p99_ms')} | "
          f"{fmt_max(a)} | {fmt_fair(a)} | {fmt_cpu(a)} | {fmt_rss(a)} |")
    w("")

# ---- callgrind -----------------------------------------------------------------------
cg = read_tsv("callgrind.tsv")
if cg:
    w("## Instructions per transaction (callgrind)")
    w("")
    w(f"Each pooler under `valgrind --tool=callgrind`; after a warm-up the counters are zeroed "
      f"(`callgrind_control -z`), a fixed `pgbench -S -M <protocol> -c {cg[0]['clients']} -t {S('CG_TX')}` runs, "
      "and the counters are dumped (`callgrind_control -d`). User-space instructions only (what the "
      "kernel does for the pooler's syscalls or io_uring requests is not counted: see the syscall "
      "table). pgring runs with shards=1 under valgrind: valgrind 3.19 does not treat `io_uring_enter` "
      "as a blocking syscall, so with two shard threads one starves the other.")
    w("")
    w("| pooler | protocol | transactions | instructions | instructions / transaction | note |")
    w("|---|---|--:|--:|--:|---|")
    for r in cg:
        ir, per = num(r["instructions"]), num(r["instr_per_tx"])
        irs = f"{ir:,.0f}" if ir else "—"
        pers = f"{per:,.0f}" if per else "—"
        w(f"| {r['target']} | {r.get('protocol', 'simple')} | {r['txns']} | {irs} | {pers} | {r['note']} |")
    w("")

# ---- strace ----------------------------------------------------------------------------
stc = read_tsv("strace.tsv")
if stc:
    w("## Syscalls per transaction (strace)")
    w("")
    w(f"`strace -c -f -p PID` attached to the pooler (all threads) during a fixed "
      f"`pgbench -S -M simple -c 10 -t {S('STRACE_TX')}`. Counts only (ptrace slows the pooler "
      "down, so this run's throughput means nothing).")
    w("")
    w("| pooler | transactions | syscalls | syscalls / transaction | top syscalls (calls / transaction) |")
    w("|---|--:|--:|--:|---|")
    for r in stc:
        tx = num(r["txns"]) or 0
        top = []
        for item in filter(None, (r.get("top") or "").split(",")):
            name, _, c = item.partition(":")
            top.append(f"{name} {num(c) / tx:.2f}" if tx and num(c) is not None else item)
        w(f"| {r['target']} | {r['txns']} | {r['syscalls']} | {r['syscalls_per_tx']} | {', '.join(top)} |")
    w("")
    ur = read_tsv("uring.tsv")
    if ur:
        w("pgring's own counters over the same run (control port `/metrics`): io_uring work per transaction.")
        w("")
        w("| transactions | submits (io_uring_enter) / tx | completions / tx | sendmsg / tx | receives / tx |")
        w("|--:|--:|--:|--:|--:|")
        for r in ur:
            tx = num(r["txns"]) or 0
            f = lambda c: f"{num(r[c]) / tx:.2f}" if tx and num(r[c]) is not None else "—"
            w(f"| {r['txns']} | {f('submits')} | {f('cqes')} | {f('sends')} | {f('recvs')} |")
        w("")

# ---- idle ------------------------------------------------------------------------------
idle = []
if os.path.exists(os.path.join(RAW, "idle.txt")):
    for line in open(os.path.join(RAW, "idle.txt")):
        if line.startswith("target="):
            idle.append(dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line)))
if idle:
    w("## Idle client connections (build/bench/idleconns)")
    w("")
    w("N md5-authenticated clients held idle against a fresh pooler; RSS = the pooler's VmRSS "
      "before and after; per connection = RSS delta / N (includes fixed costs that are touched "
      "only once clients arrive, e.g. pgring's receive buffer ring).")
    w("")
    w("| pooler | N | established | RSS before MiB | RSS after MiB | bytes / connection | logins / s |")
    w("|---|--:|--:|--:|--:|--:|--:|")
    for d in idle:
        mib = lambda k: f"{num(d.get(k)) / 1024:.1f}" if num(d.get(k)) is not None else "—"
        w(f"| {d.get('target')} | {d.get('n')} | {d.get('established', '—')} | {mib('rss_before_kb')} | "
          f"{mib('rss_after_kb')} | {d.get('per_conn_bytes', '—')} | {d.get('conns_per_sec', '—')} |")
    w("")

# ---- plots ---------------------------------------------------------------------------
def gnuplot(name, script):
    path = os.path.join(PLOT, name + ".gp")
    with open(path, "w") as f:
        f.write(script)
    if not shutil.which("gnuplot"):
        return False
    r = subprocess.run(["gnuplot", path], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(f"report: gnuplot {name}: {r.stderr}\n")
        return False
    return True


COLORS = {"direct": "#555555", "pgbouncer": "#1f77b4", "pgring": "#d62728"}
LABEL = {"direct": "direct PostgreSQL", "pgbouncer": "PgBouncer", "pgring": "pgring"}
plots = []
if mat:
    pmode = "transaction" if any(k[2] == "transaction" for k in mat) else modes[0]
    pproto = "simple" if any(k[3] == "simple" for k in mat) else mat[0][3]
    scripts = uniq(k[1] for k in mat)
    clients = sorted({int(k[4]) for k in mat}, key=int)
    panels = []
    for script in scripts:
        have_any = False
        for t in TARGETS:
            with open(os.path.join(PLOT, f"tps-{script}-{t}.dat"), "w") as f:
                f.write("# clients median min max\n")
                for c in clients:
                    k = direct_key("matrix", script, pproto, str(c), "-") if t == "direct" else \
                        ("matrix", script, pmode, pproto, str(c), "-", t)
                    a = agg(k)
                    if a and a.get("tps"):
                        f.write(f"{c} {a['tps'][0]:.1f} {a['tps'][1]:.1f} {a['tps'][2]:.1f}\n")
                        have_any = True
        if have_any:
            panels.append(script)
    if panels:
        xt = ", ".join(f'"{c}" {c}' for c in clients)
        gp = [f'set terminal pngcairo size {max(900, 560 * len(panels) + 80)},560 font "DejaVu Sans,11" noenhanced',
              f'set output "{os.path.join(OUT, "tps.png")}"',
              f'set multiplot layout 1,{len(panels)} title "pgbench throughput vs clients (higher is better)\\n'
              f'{pmode} mode, {pproto} protocol, pool_size {S("POOL_SIZE")}; pgbench, PostgreSQL and pooler share '
              f'{meta.get("nproc", "?")} CPUs\\nmedian of {S("REPEATS")} round(s), bars: min-max" font ",12"',
              "set logscale x", f"set xtics ({xt})", f"set xrange [{min(clients) / 1.6}:{max(clients) * 1.6}]",
              "set yrange [0:*]", "set grid ytics", "set key top right", "set format y \"%.0f\"",
              'set xlabel "pgbench clients (-c, log scale)"', 'set ylabel "transactions per second"']
        for script in panels:
            gp.append(f'set title "{SCRIPT_NAME.get(script, script)}"')
            parts = []
            for t in TARGETS:
                dat = os.path.join(PLOT, f"tps-{script}-{t}.dat")
                if os.path.getsize(dat) > len("# clients median min max\n"):
                    parts.append(f'"{dat}" using 1:2:3:4 with yerrorlines lw 2 pt 7 ps 1.2 lc rgb "{COLORS[t]}" '
                                 f'title "{LABEL[t]}"')
            gp.append("plot " + ", \\\n     ".join(parts))
        gp.append("unset multiplot")
        if gnuplot("tps", "\n".join(gp) + "\n"):
            plots.append(("tps.png", "Throughput vs clients"))

    # CPU per 1000 transactions, clustered bars.
    cats = []
    for script in scripts:
        for proto in [p for p in uniq(k[3] for k in mat) if p != "prepared" or pmode != "transaction"]:
            for c in clients:
                vals = []
                for t in ("pgbouncer", "pgring"):
                    a = agg(("matrix", script, pmode, proto, str(c), "-", t))
                    vals.append(a["cpu_s_per_1k"][0] if a and a.get("cpu_s_per_1k") else None)
                if any(v is not None for v in vals):
                    cats.append((f"{'-S' if script == 'select' else 'TPC-B'} {proto}\\n{c} clients", vals))
    if cats:
        dat = os.path.join(PLOT, "cpu.dat")
        with open(dat, "w") as f:
            f.write("# label pgbouncer pgring\n")
            for label, vals in cats:
                f.write(f'"{label}" ' + " ".join("NaN" if v is None else f"{v:.5f}" for v in vals) + "\n")
        width = max(800, 130 * len(cats) + 200)
        series = [(i, t) for i, t in enumerate(("pgbouncer", "pgring")) if any(v[i] is not None for _, v in cats)]
        ns = len(series)
        bars, labels = [], []
        for j, (i, t) in enumerate(series):
            src = f'"{dat}"' if j == 0 else '""'
            bars.append(f'{src} using {i + 2}' + (":xtic(1)" if j == 0 else "") +
                        f' title "{LABEL[t]}" lc rgb "{COLORS[t]}"')
            labels.append(f'"" using ($0 + {(j - (ns - 1) / 2) / (ns + 1.5):.3f}):{i + 2}:(sprintf("%.3f", ${i + 2})) '
                          f'with labels offset 0,0.7 font ",8" notitle')
        plot = ", \\\n     ".join(bars + labels)
        gp = f'''set terminal pngcairo size {width},560 font "DejaVu Sans,11" noenhanced
set output "{os.path.join(OUT, 'cpu.png')}"
set title "Pooler CPU time per 1000 transactions ({pmode} mode; lower is better)\\nuser+sys of the pooler process, all threads; median of {S('REPEATS')} round(s)" font ",13"
set style data histograms
set style histogram clustered gap 1.5
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set ylabel "CPU seconds per 1000 transactions (= ms per transaction)"
set bmargin 5
set xtics scale 0 font ",10"
set key top left
plot {plot}
'''
        if gnuplot("cpu", gp):
            plots.append(("cpu.png", "Pooler CPU per 1000 transactions"))

if idle:
    ns = sorted({int(d["n"]) for d in idle if num(d.get("n"))})
    tg = uniq(d["target"] for d in idle)
    dat = os.path.join(PLOT, "idle.dat")
    with open(dat, "w") as f:
        f.write("# n " + " ".join(tg) + "\n")
        for n in ns:
            row = []
            for t in tg:
                v = [num(d.get("per_conn_bytes")) for d in idle if d["target"] == t and int(d["n"]) == n]
                row.append(f"{v[-1]:.0f}" if v and v[-1] is not None else "NaN")
            f.write(f'"{n} idle clients" ' + " ".join(row) + "\n")
    cols = ", \\\n     ".join(
        (f'"{dat}" using {i + 2}:xtic(1)' if i == 0 else f'"" using {i + 2}') +
        f' title "{LABEL.get(t, t)}" lc rgb "{COLORS.get(t, "#2ca02c")}"' for i, t in enumerate(tg))
    n_t = len(tg)
    labels = ", \\\n     ".join(
        f'"" using ($0 + {(i - (n_t - 1) / 2) / (n_t + 1.5):.3f}):{i + 2}:(sprintf("%.0f", ${i + 2})) '
        f'with labels offset 0,0.7 font ",9" notitle' for i in range(n_t))
    gp = f'''set terminal pngcairo size 900,540 font "DejaVu Sans,11" noenhanced
set output "{os.path.join(OUT, 'idle.png')}"
set title "Pooler memory per idle client connection (lower is better)\\nVmRSS after - before, divided by N (md5 logins, then idle)" font ",13"
set style data histograms
set style histogram clustered gap 1.5
set style fill solid 0.85 border -1
set grid ytics
set yrange [0:*]
set ylabel "bytes of pooler RSS per connection"
set xtics scale 0
set key top right
plot {cols}, \\
     {labels}
'''
    if gnuplot("idle", gp):
        plots.append(("idle.png", "Memory per idle connection"))

if plots:
    w("## Plots")
    w("")
    for f, t in plots:
        w(f"![{t}]({f})")
        w("")

if timing:
    w("## Time taken")
    w("")
    w("| phase | seconds |")
    w("|---|--:|")
    for ph, sec in timing:
        w(f"| {ph} | {sec} |")
    w(f"| total | {meta.get('total_seconds', '?')} |")
    w("")

text = "\n".join(md)
with open(os.path.join(OUT, "latest.md"), "w") as f:
    f.write(text)
with open(os.path.join(RAW, "report.md"), "w") as f:
    f.write(text)
print(text)
