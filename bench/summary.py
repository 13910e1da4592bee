#!/usr/bin/env python3
"""summary.py - the benchmark suite's verdict: reads every report under
bench/results/, prints one table of figures beside their baselines and
targets, writes bench/results/latest.json (a list of {name, value, unit,
baseline, ratio, target, met}) and draws the plots with gnuplot
(bench/results/*.png).

    bench/summary.py [RESULTS_DIR]

A report that is missing (its benchmark was not run) leaves its rows out;
a target that cannot be judged has met: null. Ratios are Holdfast over
its baseline, measured in the same run on the same machine."""
import json
import os
import shutil
import subprocess
import sys

RESULTS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def load(name):
    path = os.path.join(RESULTS, name)
    return json.load(open(path)) if os.path.exists(path) else None


ROWS = []


def row(name, value, unit, baseline=None, target=None, met=None, ratio=None):
    if ratio is None and baseline:
        ratio = round(value / baseline, 3)
    ROWS.append({"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio,
                 "target": target, "met": met})


def point(e2e, name):
    if not e2e:
        return None
    for r in e2e["end_to_end"] + e2e["fanout"]:
        if r["name"] == name:
            return r
    return None


def ingest_rows(ing):
    pub = ing.get("publish_16")
    if pub:
        row("publish_sql_16_clients_vs_same_insert", round(pub["publish_tps"]), "tx/s",
            round(pub["plain_insert_tps"]), ">= 0.9 (no serializing at commit)", pub["ratio"] >= 0.9)
    for r in ing["results"]:
        c, shape, ratio = r["clients"], r["shape"], r["ingest_events_per_s"] / r["raw_pg_events_per_s"]
        target = met = None
        if shape == "batch100":
            target, met = ">= 0.7 x raw PostgreSQL", ratio >= 0.7
        elif c == 32:
            target, met = ">= 0.8 x pgbench 32 clients", ratio >= 0.8
        row(f"ingest_{shape}_{c}_clients", round(r["ingest_events_per_s"]), "events/s",
            round(r["raw_pg_events_per_s"]), target, met)


# Latency targets per end-to-end point: (p50 ms, p99 ms).
E2E_TARGETS = {"e2e-1000-1000": (4, 15), "e2e-10000-1000": (5, 25), "e2e-1000-5000": (None, 50)}


def usage_rows(hf):
    """Where the time goes at 1,000 events/s, 1,000 clients."""
    r = point(hf, "e2e-1000-1000")
    if not r or "cpu_ms_per_1000_events" not in r:
        return
    cpu = r["cpu_ms_per_1000_events"]
    pg = cpu.get("postgres")
    if pg is not None:
        row("postgres_cpu_ms_per_event_1000_ev_s", round(pg / 1000, 3), "ms", None, "<= 0.25 ms",
            pg / 1000 <= 0.25)
    for part in ("ingest", "relay", "kafka", "redis"):
        if part in cpu:
            row(f"{part}_cpu_ms_per_1000_events", cpu[part], "ms")
    gw = sum(v for k, v in cpu.items() if k in ("ga", "gb"))
    row("gateways_cpu_ms_per_1000_events", round(gw, 1), "ms")
    row("wal_bytes_per_event", r["wal_bytes_per_event"], "bytes", None, "<= 500",
        r["wal_bytes_per_event"] <= 500)


def relay_rows(rl):
    row("relay_over_ingest_batched", rl["relay_recorded_events_per_s"], "events/s",
        rl["ingest_batched_events_per_s"], ">= 1.0 x ingest (one relay)", rl["relay_over_ingest"] >= 1.0)
    c = rl["commit_to_redis_ms"]
    row("commit_to_redis_p50", c["p50"], "ms", None, "<= 2.5 ms", c["p50"] <= 2.5)
    row("commit_to_redis_p99", c["p99"], "ms", None, "<= 8 ms", c["p99"] <= 8)
    fill = rl["relay_statements"].get("chain_fill")
    if fill:
        row(f"relay_read_ms_per_call_{rl['events_behind']}_behind", fill["mean_ms"], "ms", None,
            "<= 0.3 ms (new events stream; this is its only read)", fill["mean_ms"] <= 0.3)
    for name in ("copy_event_offsets", "relay_commit"):
        st = rl["relay_statements"].get(name)
        if st:
            row(f"relay_{name}_ms_per_call", st["mean_ms"], "ms")


def e2e_rows(hf, sio):
    for r in hf["end_to_end"]:
        peer = point(sio, r["name"])
        limits = E2E_TARGETS.get(r["name"], (None, None))
        for q in ("p50", "p99"):
            target = met = None
            limit = limits[0] if q == "p50" else limits[1]
            if limit is not None:
                target, met = f"<= {limit} ms", r["latency_ms"][q] <= limit
            if peer and q == "p99":
                target = (target + "; " if target else "") + "< Socket.IO"
                met = (met is not False) and r["latency_ms"][q] < peer["latency_ms"][q]
            row(f"{r['name'].replace('-', '_')}_latency_{q}", r["latency_ms"][q], "ms",
                peer["latency_ms"][q] if peer else None, target, met)
    for r in hf["fanout"]:
        peer = point(sio, r["name"])
        row(f"{r['name'].replace('-', '_')}_deliveries_vs_socketio", round(r["deliveries_per_second"]),
            "deliveries/s", round(peer["deliveries_per_second"]) if peer else None,
            ">= 3 x Socket.IO", (r["deliveries_per_second"] >= 3 * peer["deliveries_per_second"]) if peer else None)
    cc = hf.get("crosscheck")
    if cc and cc.get("ws"):
        for q in ("p50", "p99"):
            row(f"crosscheck_loadgen_vs_node_ws_{q}", cc["loadgen"]["latency_ms"][q], "ms",
                cc["ws"]["latency_ms"][q], "two clients agree (informational)")


def gateway_rows(gw):
    f = gw.get("fanout")
    if f and f.get("raw_baseline"):
        row("fanout_gateway_vs_raw_epoll", round(f["deliveries_per_second"]), "deliveries/s",
            round(f["raw_baseline"]["deliveries_per_second"]), ">= 0.8 x raw epoll",
            f["gateway_over_raw"] >= 0.8)
    rk = gw.get("redis_kill")
    if rk and "outage" in rk:
        o = rk["outage"]
        row("redis_kill_longest_delivery_pause", o["max_gap_ms"], "ms", None, "<= 1000 ms",
            o["max_gap_ms"] <= 1000)
        row("redis_kill_p99_during_outage", o["p99_ms_worst_interval"], "ms", None, "<= 250 ms",
            o["p99_ms_worst_interval"] <= 250)
        row("redis_kill_deliveries_from_kafka_per_s", o["kafka_deliveries_per_second"], "deliveries/s")
        row("redis_kill_events_lost_or_doubled", rk["duplicates"] + rk["chain_breaks"], "events", None, "0",
            rk["duplicates"] + rk["chain_breaks"] == 0)


def capacity_rows(cap):
    one, three = cap["one_gateway"], cap["three_gateways"]
    row("connections_one_gateway", one["connections"], "connections", cap["fd_limit"],
        f">= {one['clients']} (fd limit - 500)", one["connections"] >= one["clients"])
    row("memory_per_idle_connection", one["rss_bytes_per_connection"], "bytes", None, "<= 8192",
        one["rss_bytes_per_connection"] <= 8192)
    row("connect_rate_one_gateway", one["connect_per_second"], "connections/s")
    row("connections_three_gateways", three["connections"], "connections", three["clients"],
        f">= {three['clients']}", three["connections"] >= three["clients"])


def scaling_rows(sc):
    runs = {r["gateways"]: r for r in sc["runs"]}
    lo, hi = min(runs), max(runs)
    a, b = runs[lo], runs[hi]
    row(f"scaling_p99_{hi}_vs_{lo}_gateways", b["latency_ms"]["p99"], "ms", a["latency_ms"]["p99"],
        "flat (<= 2 x)", b["latency_ms"]["p99"] <= 2 * max(a["latency_ms"]["p99"], 1))
    per_a = a["redis_output_bytes_per_second"] / lo
    ratio = round(b["redis_output_bytes_per_second"] / (per_a * hi), 3) if per_a else None
    row(f"scaling_redis_output_{hi}_gateways_vs_linear", b["redis_output_bytes_per_second"], "bytes/s",
        round(per_a * hi), "linear (0.75-1.25 x)", ratio is not None and 0.75 <= ratio <= 1.25, ratio)


def print_table():
    print(f"{'figure':<52} {'value':>12} {'baseline':>12} {'ratio':>7}  {'target':<32} met")
    for r in ROWS:
        b = "" if r["baseline"] is None else r["baseline"]
        q = "" if r["ratio"] is None else r["ratio"]
        m = {True: "yes", False: "NO", None: ""}[r["met"]]
        print(f"{r['name']:<52} {r['value']:>12} {b!s:>12} {q!s:>7}  {r['target'] or '':<32} {m}")


# --- plots ---------------------------------------------------------------------

def write(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script, text=True, check=True, cwd=RESULTS)


TERM = "set terminal pngcairo size 900,540 font 'DejaVu Sans,10'\nset grid\nset key left top\n"


def plot_ingest(ing):
    data = {}
    for r in ing["results"]:
        data.setdefault(r["clients"], {})[r["shape"]] = r
    lines = ["# clients ingest_single raw_single ingest_batch100 raw_batch100"]
    for c in sorted(data):
        d = data[c]
        lines.append(f"{c} {d['single']['ingest_events_per_s']} {d['single']['raw_pg_events_per_s']} "
                     f"{d['batch100']['ingest_events_per_s']} {d['batch100']['raw_pg_events_per_s']}")
    write(os.path.join(RESULTS, "ingest.dat"), lines)
    gnuplot(TERM + """set output 'ingest.png'
set title 'Events committed per second vs. concurrent clients (fsync on)'
set logscale xy
set xlabel 'concurrent clients'
set ylabel 'events/s'
plot 'ingest.dat' u 1:2 w lp t 'ingest, single events', '' u 1:3 w lp dt 2 t 'raw PostgreSQL (pgbench), single', \\
     '' u 1:4 w lp t 'ingest, batches of 100', '' u 1:5 w lp dt 2 t 'raw PostgreSQL (pgbench), batches of 100'
""")


def plot_cdf():
    cdf = os.path.join(RESULTS, "cdf")
    if not os.path.isdir(cdf):
        return
    curves = []
    for sysname, label in (("holdfast", "Holdfast"), ("socketio", "Socket.IO")):
        for pt, what in (("e2e-1000-1000", "1,000 clients"), ("e2e-10000-1000", "10,000 clients")):
            path = os.path.join(cdf, f"{sysname}-{pt}.dat")
            if os.path.exists(path) and os.path.getsize(path):
                curves.append(f"'cdf/{sysname}-{pt}.dat' u 1:2 w l lw 2 t '{label}, {what}'")
    if not curves:
        return
    gnuplot(TERM + """set output 'latency_cdf.png'
set title 'POST -> WebSocket latency CDF at 1,000 events/s, 1,000 channels, two gateways'
set logscale x
set xlabel 'latency (ms)'
set ylabel 'fraction of deliveries'
set key right bottom
set yrange [0:1]
plot """ + ", ".join(curves) + "\n")


def plot_scaling(sc):
    lines = ["# gateways p50 p99 redis_out_MBps redis_cores"]
    for r in sc["runs"]:
        lines.append(f"{r['gateways']} {r['latency_ms']['p50']} {r['latency_ms']['p99']} "
                     f"{r['redis_output_bytes_per_second'] / 1e6:.4f} {r['redis_cpu_cores']}")
    write(os.path.join(RESULTS, "scaling.dat"), lines)
    gnuplot(TERM + f"""set output 'scaling.png'
set title 'The same load ({sc['clients']} clients, {sc['events_per_second_asked']} events/s) on 1-8 gateways'
set logscale x 2
set xlabel 'gateway processes'
set ylabel 'latency (ms)'
set y2label 'Redis output (MB/s)'
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
plot 'scaling.dat' u 1:2 w lp t 'p50 latency', '' u 1:3 w lp t 'p99 latency', \\
     '' u 1:4 axes x1y2 w lp dt 2 t 'Redis output MB/s'
""")


def plot_recovery(gw):
    rk = gw.get("redis_kill") if gw else None
    if not rk or "intervals" not in rk:
        return
    lines = ["# t_s deliveries_per_s p50_ms p99_ms max_ms"]
    for iv in rk["intervals"]:
        lines.append(f"{iv['t']} {iv['deliveries_per_second']} {iv['p50_ms']} {iv['p99_ms']} {iv['max_ms']}")
    write(os.path.join(RESULTS, "recovery.dat"), lines)
    o = rk["outage"]
    gnuplot(TERM + f"""set output 'recovery.png'
set title 'Latency and deliveries around a Redis kill (SIGKILL at {o['kill_s']:.1f} s, back at {o['back_s']:.1f} s)'
set xlabel 'seconds since counting began'
set ylabel 'latency (ms)'
set y2label 'deliveries/s'
set ytics nomirror
set y2tics
set logscale y
set arrow from {o['kill_s']},graph 0 to {o['kill_s']},graph 1 nohead dt 3 lc rgb 'red'
set arrow from {o['back_s']},graph 0 to {o['back_s']},graph 1 nohead dt 3 lc rgb 'dark-green'
plot 'recovery.dat' u 1:($3>0?$3:1/0) w lp t 'p50', '' u 1:($4>0?$4:1/0) w lp t 'p99', \\
     '' u 1:($5>0?$5:1/0) w l dt 2 t 'max', '' u 1:2 axes x1y2 w steps lc rgb 'gray' t 'deliveries/s'
""")


def plot_peer(hf, sio):
    lines = ["# label holdfast socketio"]
    for r in hf["fanout"]:
        peer = point(sio, r["name"])
        if peer:
            lines.append(f"\"fan-out {r['clients']} subscribers\" {r['deliveries_per_second']} "
                         f"{peer['deliveries_per_second']}")
    write(os.path.join(RESULTS, "peer_fanout.dat"), lines)
    lines = ["# label holdfast_p99 socketio_p99"]
    for r in hf["end_to_end"]:
        peer = point(sio, r["name"])
        if peer:
            lines.append(f"\"{r['clients']} cl, {r['events_per_second_asked']} ev/s\" {r['latency_ms']['p99']} "
                         f"{peer['latency_ms']['p99']}")
    write(os.path.join(RESULTS, "peer_p99.dat"), lines)
    gnuplot(TERM + """set output 'peer.png'
set multiplot layout 1,2 title 'Holdfast (durable: PostgreSQL + Kafka) vs. Socket.IO + Redis adapter, same run'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -30
set key left top
set title 'fan-out deliveries/s (higher is better)'
set yrange [0:*]
plot 'peer_fanout.dat' u 2:xtic(1) t 'Holdfast', '' u 3 t 'Socket.IO'
set title 'end-to-end p99 latency, ms (lower is better)'
set yrange [*:*]
set logscale y
plot 'peer_p99.dat' u 2:xtic(1) t 'Holdfast', '' u 3 t 'Socket.IO'
unset multiplot
""")


def main():
    ing, gw, cap, sc = load("ingest_throughput.json"), load("gateway.json"), load("capacity.json"), load("scaling.json")
    hf, sio = load("e2e-holdfast.json"), load("e2e-socketio.json")
    if ing:
        ingest_rows(ing)
    if hf:
        e2e_rows(hf, sio)
        usage_rows(hf)
    rl = load("relay.json")
    if rl and "relay_over_ingest" in rl:
        relay_rows(rl)
    if gw:
        gateway_rows(gw)
    if cap:
        capacity_rows(cap)
    if sc:
        scaling_rows(sc)
    print_table()
    json.dump(ROWS, open(os.path.join(RESULTS, "latest.json"), "w"), indent=2)
    if not shutil.which("gnuplot"):
        print("gnuplot is not installed: no plots (apt-get install gnuplot-nox)")
        return
    if ing:
        plot_ingest(ing)
    plot_cdf()
    if sc:
        plot_scaling(sc)
    plot_recovery(gw)
    if hf and sio:
        plot_peer(hf, sio)
    pngs = sorted(p for p in os.listdir(RESULTS) if p.endswith(".png"))
    print("plots: " + ", ".join(os.path.join(RESULTS, p) for p in pngs))


if __name__ == "__main__":
    main()
