#!/usr/bin/env python3
"""k8s_check.py - deploy/k8s agrees with the binaries it runs.

    k8s_check.py RENDERED.yaml BIN_DIR REPO_ROOT

Reads the rendered manifests (kubectl kustomize) and each binary's --help,
and checks what a schema cannot: every container running a Holdfast
binary sets only HOLDFAST_* variables that binary reads; its probes use
paths the shared HTTP server serves (common/src/http.c) on the port the
binary listens on (HOLDFAST_PORT, or the binary's default); Services,
HPAs, PDBs and the PodMonitor point at things that exist; one Holdfast
image, tagged, never latest; the migration's partition count equals the
KafkaTopic's; the gateway's grace period covers preStop plus its drain.
Prints one line per problem and exits 1 if there is any."""
import re
import shlex
import subprocess
import sys

import yaml

rendered, bin_dir, root = sys.argv[1:4]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
problems = []


def problem(obj, msg):
    problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {msg}")


def binary_help(name, cache={}):
    """{'env': {VAR: default}, 'flags': {flag}} from NAME --help."""
    if name not in cache:
        out = subprocess.run([f"{bin_dir}/{name}", "--help"], capture_output=True, text=True)
        text = out.stdout + out.stderr
        flags = set(re.findall(r"^\s+--([a-z0-9-]+)", text, re.M))
        env = dict(re.findall(r"env (HOLDFAST_[A-Z0-9_]+), default: (\S*)", text))
        if not flags:
            sys.exit(f"k8s_check: {name} --help listed no settings")
        cache[name] = {"env": env, "flags": flags}
    return cache[name]


def served_paths():
    src = open(f"{root}/common/src/http.c").read()
    return set(re.findall(r'\{"GET", "(/[a-z]+)", false, NULL\}', src))


def workloads():
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield d, d["spec"]["template"]


def holdfast_binary(container):
    """The holdfast-* binary a container runs, or None."""
    words = container.get("command", []) + container.get("args", [])
    if words[:2] == ["/bin/sh", "-c"]:
        words = shlex.split(words[2])
    for w in words:
        if w.startswith("holdfast-"):
            return w, words
    return None, words


def check_container(obj, c, paths, needs_probes):
    binary, words = holdfast_binary(c)
    if not binary:
        return
    h = binary_help(binary)
    for w in words:
        if w.startswith("--") and w[2:].split("=")[0].rstrip(";") not in h["flags"]:
            problem(obj, f"{c['name']}: {binary} has no flag {w}")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    if c.get("envFrom"):
        problem(obj, f"{c['name']}: envFrom cannot be checked against {binary} --help; list variables")
    for var in env:
        if var.startswith("HOLDFAST_") and var not in h["env"]:
            problem(obj, f"{c['name']}: {binary} does not read {var}")
    port = env.get("HOLDFAST_PORT") or h["env"].get("HOLDFAST_PORT")
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    for p in c.get("ports", []):
        if port and str(p["containerPort"]) != str(port):
            problem(obj, f"{c['name']}: containerPort {p['containerPort']} but {binary} listens on {port}")
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = c.get(kind)
        if not probe:
            if needs_probes:
                problem(obj, f"{c['name']}: no {kind}")
            continue
        get = probe.get("httpGet")
        if not get:
            problem(obj, f"{c['name']}: {kind} is not an HTTP GET")
            continue
        if get["path"] not in paths:
            problem(obj, f"{c['name']}: {kind} path {get['path']} is not served ({sorted(paths)})")
        p = ports.get(get["port"], get["port"])
        if str(p) != str(port):
            problem(obj, f"{c['name']}: {kind} port {get['port']} ({p}) but {binary} listens on {port}")


def labels_match(selector, labels):
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        if e["operator"] == "In" and labels.get(e["key"]) not in e["values"]:
            return False
    return True


def pods_selected(selector):
    return [t for _, t in workloads() if labels_match(selector, t["metadata"].get("labels", {}))]


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)?", text)
    n = int(m.group(1))
    return {"ms": n / 1000, "s": n, "m": n * 60, None: n}[m.group(2)]


paths = served_paths()
images = set()
for obj, tmpl in workloads():
    spec = tmpl["spec"]
    for c in spec.get("initContainers", []) + spec["containers"]:
        images.add(c["image"])
        if ":" not in c["image"].rsplit("/", 1)[-1] or c["image"].endswith(":latest"):
            problem(obj, f"{c['name']}: image {c['image']} has no fixed tag")
        check_container(obj, c, paths, obj["kind"] == "Deployment" and c in spec["containers"])
    if obj["kind"] == "Deployment":
        if not spec.get("topologySpreadConstraints"):
            problem(obj, "no topologySpreadConstraints")
        sc = spec.get("securityContext", {})
        if not sc.get("runAsNonRoot"):
            problem(obj, "pods may run as root")
        for c in spec.get("initContainers", []) + spec["containers"]:
            csc = c.get("securityContext", {})
            if not (csc.get("readOnlyRootFilesystem") and csc.get("allowPrivilegeEscalation") is False):
                problem(obj, f"{c['name']}: root filesystem writable or privilege escalation allowed")
            if "resources" not in c or "limits" not in c["resources"]:
                problem(obj, f"{c['name']}: no resource limits")
        for c in spec["containers"]:
            binary, _ = holdfast_binary(c)
            drain = {e["name"]: e.get("value") for e in c.get("env", [])}.get("HOLDFAST_DRAIN_TIMEOUT")
            if binary and drain is None:
                drain = binary_help(binary)["env"].get("HOLDFAST_DRAIN_TIMEOUT")
            if drain:
                pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
                wait = int(pre[1]) if pre[:1] == ["sleep"] else 0
                grace = spec.get("terminationGracePeriodSeconds", 30)
                if grace < wait + seconds(drain) + 5:
                    problem(obj, f"terminationGracePeriodSeconds {grace} < preStop {wait} s + drain {drain} + 5 s")

holdfast_images = {i for i in images if "/holdfast/" in i or i.startswith("holdfast")}
if len(holdfast_images) != 1:
    problems.append(f"Holdfast containers use {len(holdfast_images)} images: {sorted(holdfast_images)}")

by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

for svc in by_kind.get("Service", {}).values():
    pods = pods_selected({"matchLabels": svc["spec"]["selector"]})
    if not pods:
        problem(svc, "selects no pods")
    names = {p.get("name") for t in pods for c in t["spec"]["containers"] for p in c.get("ports", [])}
    numbers = {p["containerPort"] for t in pods for c in t["spec"]["containers"] for p in c.get("ports", [])}
    for p in svc["spec"]["ports"]:
        if p.get("targetPort") not in names | numbers:
            problem(svc, f"targetPort {p.get('targetPort')} is no port of its pods")
    if svc["spec"].get("sessionAffinity", "None") != "None":
        problem(svc, "session affinity: clients resume by position anywhere")
for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
    ref = hpa["spec"]["scaleTargetRef"]
    if ref["name"] not in by_kind.get(ref["kind"], {}):
        problem(hpa, f"scales {ref['kind']}/{ref['name']}, which does not exist")
for pdb in by_kind.get("PodDisruptionBudget", {}).values():
    if not pods_selected(pdb["spec"]["selector"]):
        problem(pdb, "selects no pods")
for pm in by_kind.get("PodMonitor", {}).values():
    pods = pods_selected(pm["spec"]["selector"])
    if not pods:
        problem(pm, "selects no pods")
    for ep in pm["spec"]["podMetricsEndpoints"]:
        if ep.get("path", "/metrics") not in paths:
            problem(pm, f"path {ep.get('path')} is not served")
        for t in pods:
            if ep["port"] not in {p.get("name") for c in t["spec"]["containers"] for p in c.get("ports", [])}:
                problem(pm, f"port {ep['port']} missing on pods {t['metadata']['labels']}")

topics = list(by_kind.get("KafkaTopic", {}).values())
job = by_kind.get("Job", {}).get("holdfast-migrate")
if topics and job:
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0].get("env", [])}
    want = env.get("HOLDFAST_PARTITIONS") or binary_help("holdfast-migrate")["env"]["HOLDFAST_PARTITIONS"]
    for t in topics:
        if str(t["spec"]["partitions"]) != str(want):
            problem(t, f"{t['spec']['partitions']} partitions but the migration writes {want}")

for p in problems:
    print(f"k8s_check: {p}")
print(f"k8s_check: {len(docs)} objects, {len(problems)} problems")
sys.exit(1 if problems else 0)
