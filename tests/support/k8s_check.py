#!/usr/bin/env python3
"""k8s_check.py - deploy/k8s agrees with the binaries it runs.

    k8s_check.py RENDERED.yaml BIN_DIR REPO_ROOT [ADAPTER_RULES.yaml]

Reads the rendered manifests (kubectl kustomize) and each binary's --help,
and checks what a schema cannot: every container running a Holdfast
binary sets only HOLDFAST_* variables that binary reads; its probes use
paths the shared HTTP server serves (common/src/http.c) on the port the
binary listens on (HOLDFAST_PORT, or the binary's default), on an address
other pods reach; liveness and startup on /livez, readiness on /readyz;
ConfigMap and Secret references resolve; Services, HPAs (and the
adapter's metric names), PDBs, Ingress backends and the PodMonitor point at
things that exist; every pod meets Pod Security "restricted"; one Holdfast
image, tagged, never latest; the shared settings name the example stores'
real services and topic; the migration's partition count equals the
KafkaTopic's; grace periods cover preStop plus drain. The stores'
security: every volume and mount resolves (Secrets the operators make
included) and every file a setting names (password files, CAs, the Kafka
properties and their @FILE values) is mounted; the Kafka listener the
services use is TLS with SCRAM-SHA-512 and their properties say so; each
service is its own KafkaUser, whose ACLs let the relay write the topic and
gateways and ingest read it (and nothing more); Redis keeps protected mode
and requires the password the services read; PostgreSQL is verified
(verify-full) with its operator's CA and refuses connections without TLS;
the gateways allow an explicit list of web origins.
Prints one line per problem and exits 1 if there is any."""
import os
import re
import shlex
import subprocess
import sys

import yaml

rendered, bin_dir, root = sys.argv[1:4]
adapter_rules = sys.argv[4] if len(sys.argv) > 4 else None
# libyaml's loader when there is one: 095 runs this once per mutant.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
docs = [d for d in yaml.load_all(open(rendered), Loader=LOADER) if d]
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
    return set(re.findall(r'\{"GET", "(/[a-z]+)", false, NULL(?:, NULL)?\}', src))


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


PROBE_PATHS = {"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"}


def check_container(obj, c, paths, needs_probes):
    binary, words = holdfast_binary(c)
    if not binary:
        if "/holdfast/" in c["image"] or c["image"] == "holdfast":
            problem(obj, f"{c['name']}: runs the Holdfast image without naming a binary")
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
    listen = env.get("HOLDFAST_LISTEN_ADDR") or h["env"].get("HOLDFAST_LISTEN_ADDR")
    if c.get("ports") and listen and (listen.startswith("127.") or listen == "localhost"):
        problem(obj, f"{c['name']}: {binary} listens on {listen}, which no probe or Service reaches")
    check_refs(obj, c)
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
        elif get["path"] != PROBE_PATHS[kind]:
            problem(obj, f"{c['name']}: {kind} on {get['path']}, not {PROBE_PATHS[kind]}")
        p = ports.get(get["port"], get["port"])
        if str(p) != str(port):
            problem(obj, f"{c['name']}: {kind} port {get['port']} ({p}) but {binary} listens on {port}")


# Secrets the operator creates (deploy/k8s/base/secret.template.yaml).
OPERATOR_SECRETS = {d["metadata"]["name"]: d for d in yaml.safe_load_all(open(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "../../deploy/k8s/base/secret.template.yaml")))
    if d and d.get("kind") == "Secret"}

CNPG_APP_KEYS = {"uri", "username", "password", "host", "port", "dbname", "jdbc-uri", "pgpass"}


def check_refs(obj, c):
    """configMapKeyRef and secretKeyRef resolve (a CloudNativePG Cluster
    named X makes the Secret X-app)."""
    for e in c.get("env", []):
        src = e.get("valueFrom", {})
        if "configMapKeyRef" in src:
            ref = src["configMapKeyRef"]
            cm = by_kind.get("ConfigMap", {}).get(ref["name"])
            if not cm or ref["key"] not in cm.get("data", {}):
                problem(obj, f"{c['name']}: {e['name']} reads ConfigMap {ref['name']} key {ref['key']}, which does not exist")
        if "secretKeyRef" in src:
            ref = src["secretKeyRef"]
            secret = by_kind.get("Secret", {}).get(ref["name"]) or OPERATOR_SECRETS.get(ref["name"])
            made_by_cnpg = any(f"{n}-app" == ref["name"] for n in by_kind.get("Cluster", {}))
            if secret and ref["key"] not in {**secret.get("data", {}), **secret.get("stringData", {})}:
                problem(obj, f"{c['name']}: Secret {ref['name']} has no key {ref['key']}")
            elif not secret and not (made_by_cnpg and ref["key"] in CNPG_APP_KEYS):
                problem(obj, f"{c['name']}: Secret {ref['name']} key {ref['key']} comes from nowhere")


def labels_match(selector, labels):
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        op, key, values = e["operator"], e["key"], e.get("values", [])
        if (op == "In" and labels.get(key) not in values) or \
                (op == "NotIn" and labels.get(key) in values) or \
                (op == "Exists" and key not in labels) or \
                (op == "DoesNotExist" and key in labels):
            return False
    return True


def check_restricted(obj, spec):
    """Pod Security "restricted" (the example namespace enforces it)."""
    psc = spec.get("securityContext", {})
    for c in spec.get("initContainers", []) + spec["containers"]:
        csc = c.get("securityContext", {})
        if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot"))):
            problem(obj, f"{c['name']}: may run as root")
        seccomp = csc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problem(obj, f"{c['name']}: no seccomp profile")
        if csc.get("allowPrivilegeEscalation") is not False:
            problem(obj, f"{c['name']}: privilege escalation allowed")
        if "ALL" not in csc.get("capabilities", {}).get("drop", []):
            problem(obj, f"{c['name']}: capabilities not dropped")
        if not csc.get("readOnlyRootFilesystem"):
            problem(obj, f"{c['name']}: root filesystem writable")
        if "resources" not in c or "limits" not in c["resources"]:
            problem(obj, f"{c['name']}: no resource limits")


def pods_selected(selector):
    return [t for _, t in workloads() if labels_match(selector, t["metadata"].get("labels", {}))]


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)?", text)
    n = int(m.group(1))
    return {"ms": n / 1000, "s": n, "m": n * 60, None: n}[m.group(2)]


by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

paths = served_paths()
images = set()
for obj, tmpl in workloads():
    spec = tmpl["spec"]
    for c in spec.get("initContainers", []) + spec["containers"]:
        images.add(c["image"])
        if ":" not in c["image"].rsplit("/", 1)[-1] or c["image"].endswith(":latest"):
            problem(obj, f"{c['name']}: image {c['image']} has no fixed tag")
        check_container(obj, c, paths, obj["kind"] == "Deployment" and c in spec["containers"])
    check_restricted(obj, spec)
    if obj["kind"] == "Deployment":
        if not spec.get("topologySpreadConstraints"):
            problem(obj, "no topologySpreadConstraints")
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
adapter_metrics = set()
if adapter_rules:
    for d in yaml.safe_load_all(open(adapter_rules)):
        for rule in yaml.safe_load(d["data"]["config.yaml"]).get("rules", []):
            adapter_metrics.add(rule["name"]["as"])
for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
    for m in hpa["spec"].get("metrics", []):
        if m["type"] == "Pods" and adapter_rules and m["pods"]["metric"]["name"] not in adapter_metrics:
            problem(hpa, f"metric {m['pods']['metric']['name']} is not served by the adapter rules")
for ing in by_kind.get("Ingress", {}).values():
    for rule in ing["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            b = p["backend"]["service"]
            svc = by_kind.get("Service", {}).get(b["name"])
            want = b["port"].get("name", b["port"].get("number"))
            if not svc:
                problem(ing, f"{p['path']} goes to Service {b['name']}, which does not exist")
            elif want not in {x.get("name") for x in svc["spec"]["ports"]} | {x["port"] for x in svc["spec"]["ports"]}:
                problem(ing, f"{p['path']} goes to port {want}, which Service {b['name']} lacks")
# The shared settings against the example stores.
cm = by_kind.get("ConfigMap", {}).get("holdfast-config", {}).get("data", {})
kafkas = by_kind.get("Kafka", {})
if cm and kafkas:
    host, _, port = cm.get("kafka-brokers", "").split(",")[0].partition(":")
    ok = any(host == f"{n}-kafka-bootstrap" and int(port or 0) in {l["port"] for l in k["spec"]["kafka"]["listeners"]}
             for n, k in kafkas.items())
    if not ok:
        problems.append(f"ConfigMap/holdfast-config: kafka-brokers {cm.get('kafka-brokers')} is no Kafka's bootstrap")
if cm and by_kind.get("KafkaTopic"):
    if cm.get("topic") not in {t["spec"].get("topicName", n) for n, t in by_kind["KafkaTopic"].items()}:
        problems.append(f"ConfigMap/holdfast-config: topic {cm.get('topic')} is no KafkaTopic")
m = re.match(r"redis://(?:[^@/]*@)?([^:/]+):(\d+)", cm.get("redis-url", ""))
if cm and by_kind.get("StatefulSet", {}).get("holdfast-redis"):
    svc = by_kind.get("Service", {}).get(m.group(1)) if m else None
    if not svc or int(m.group(2)) not in {p["port"] for p in svc["spec"]["ports"]}:
        problems.append(f"ConfigMap/holdfast-config: redis-url {cm.get('redis-url')} is no Service")
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

# ---- the stores' security -------------------------------------------------

def secret_keys(name):
    """The keys of Secret name, wherever it comes from; None if from nowhere."""
    if name in by_kind.get("Secret", {}):
        d = by_kind["Secret"][name]
        return set(d.get("data", {})) | set(d.get("stringData", {}))
    if name in OPERATOR_SECRETS:
        d = OPERATOR_SECRETS[name]
        return set(d.get("data", {})) | set(d.get("stringData", {}))
    for n in by_kind.get("Cluster", {}):  # CloudNativePG
        if name == f"{n}-app":
            return CNPG_APP_KEYS
        if name == f"{n}-ca":
            return {"ca.crt", "ca.key"}
    for n in by_kind.get("Kafka", {}):  # Strimzi's cluster CA
        if name == f"{n}-cluster-ca-cert":
            return {"ca.crt", "ca.p12", "ca.password"}
    if name in by_kind.get("KafkaUser", {}):  # Strimzi's User Operator
        return {"password", "sasl.jaas.config"}
    return None


def mounted_files(obj, spec, c):
    """{path: (kind, source name, key)} of the files container c sees in its volumes."""
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    files = {}
    for m in c.get("volumeMounts", []):
        v = vols.get(m["name"])
        if not v:
            problem(obj, f"{c['name']}: mounts volume {m['name']}, which the pod lacks")
            continue
        if "secret" in v:
            kind, name = "Secret", v["secret"]["secretName"]
            keys = secret_keys(name)
        elif "configMap" in v:
            kind, name = "ConfigMap", v["configMap"]["name"]
            cmap = by_kind.get("ConfigMap", {}).get(name)
            keys = set(cmap.get("data", {})) if cmap else None
        else:
            continue
        if keys is None:
            problem(obj, f"{c['name']}: volume {m['name']} is {kind} {name}, which comes from nowhere")
            continue
        src = v.get("secret") or v.get("configMap")
        items = src.get("items") or [{"key": k, "path": k} for k in sorted(keys)]
        for it in items:
            if it["key"] not in keys:
                problem(obj, f"{c['name']}: {kind} {name} has no key {it['key']}")
            files[f"{m['mountPath'].rstrip('/')}/{it['path']}"] = (kind, name, it["key"])
    return files


def file_content(files, path):
    kind, name, key = files[path]
    if kind == "ConfigMap":
        return by_kind["ConfigMap"][name]["data"][key]
    return None


def kafka_props(env, files):
    """The librdkafka properties a container gives, in order (file, then flags)."""
    lines = []
    path = env.get("HOLDFAST_KAFKA_PROPERTIES_FILE")
    if path and path in files:
        lines += (file_content(files, path) or "").splitlines()
    lines += (env.get("HOLDFAST_KAFKA_PROPERTY") or "").splitlines()
    props = {}
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, _, v = line.partition("=")
            props[k.strip()] = v.strip()
    return props


def acl_allows(user, rtype, rname, op):
    for acl in user["spec"].get("authorization", {}).get("acls", []):
        r = acl["resource"]
        if acl.get("type", "allow") != "allow" or r["type"] != rtype:
            continue
        if rtype != "cluster":
            pat = r.get("patternType", "literal")
            if not (r.get("name") == rname or r.get("name") == "*" or
                    (pat == "prefix" and rname.startswith(r.get("name", "")))):
                continue
        if op in acl["operations"] or "All" in acl["operations"]:
            return True
    return False


# What each binary does with the topic: (resource type, name, operation) it
# needs, and what it must not be able to do.
KAFKA_NEEDS = {
    "holdfast-relay": {"needs": [("topic", "Write"), ("topic", "Read"), ("topic", "Describe")]},
    "holdfast-gateway": {"needs": [("topic", "Read"), ("topic", "Describe"),
                                   ("group:holdfast-logread-unused", "Read")],
                         "never": [("topic", "Write")]},
    "holdfast-ingest": {"needs": [("topic", "Read"), ("topic", "Describe"),
                                  ("group:holdfast-logread-unused", "Read")],
                        "never": [("topic", "Write")]},
}

kafka = next(iter(kafkas.values()), None)
listener = None
if kafka and cm:
    port = int(cm.get("kafka-brokers", ":0").split(",")[0].partition(":")[2] or 0)
    listener = next((l for l in kafka["spec"]["kafka"]["listeners"] if l["port"] == port), None)
    if listener and not listener.get("tls"):
        problems.append(f"Kafka: listener {listener['name']} (the services') is not TLS")
    if listener and listener.get("authentication", {}).get("type") != "scram-sha-512":
        problems.append(f"Kafka: listener {listener['name']} (the services') does not authenticate with SCRAM-SHA-512")
    if kafka["spec"]["kafka"].get("authorization", {}).get("type") != "simple":
        problems.append("Kafka: no ACLs (authorization simple)")
    if "userOperator" not in kafka["spec"].get("entityOperator", {}):
        problems.append("Kafka: no User Operator: the KafkaUsers would never exist")
redis_sts = by_kind.get("StatefulSet", {}).get("holdfast-redis")
redis_secret = None
if redis_sts:
    rc = redis_sts["spec"]["template"]["spec"]["containers"][0]
    for e in rc.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if e["name"] == "REDISCLI_AUTH" and ref:
            redis_secret = (ref["name"], ref["key"])
    script = " ".join(rc.get("command", []) + rc.get("args", []))
    if not redis_secret or "requirepass" not in script or "$REDISCLI_AUTH" not in script:
        problem(redis_sts, "Redis requires no password from a Secret")
    conf = by_kind.get("ConfigMap", {}).get("holdfast-redis", {}).get("data", {}).get("redis.conf", "")
    if not re.search(r"^protected-mode yes$", conf, re.M):
        problem(redis_sts, "Redis runs without protected-mode yes")
pg_clusters = by_kind.get("Cluster", {})
for n, cl in pg_clusters.items():
    hba = cl["spec"].get("postgresql", {}).get("pg_hba") or []
    if not any(re.match(r"hostnossl\s+all\s+all\s+\S+\s+reject", line) for line in hba):
        problem(cl, "PostgreSQL accepts connections without TLS (no hostnossl ... reject)")
kafka_users_used = {}
for obj, tmpl in workloads():
    spec = tmpl["spec"]
    for c in spec.get("initContainers", []) + spec["containers"]:
        binary, _ = holdfast_binary(c)
        if not binary:
            continue
        files = mounted_files(obj, spec, c)
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        srcs = {e["name"]: e.get("valueFrom", {}) for e in c.get("env", [])}
        for var, val in env.items():
            if val and (var.endswith("_FILE") or var == "PGSSLROOTCERT") and val not in files:
                problem(obj, f"{c['name']}: {var}={val} is no mounted file")
        if "HOLDFAST_PG_URL" in srcs and pg_clusters:
            if env.get("PGSSLMODE") != "verify-full":
                problem(obj, f"{c['name']}: PostgreSQL not verified (PGSSLMODE={env.get('PGSSLMODE')})")
            root = env.get("PGSSLROOTCERT")
            if root in files and not (files[root][0] == "Secret" and
                                      files[root][1] in {f"{n}-ca" for n in pg_clusters}):
                problem(obj, f"{c['name']}: PGSSLROOTCERT is not the CloudNativePG CA")
        if "HOLDFAST_REDIS_URL" in srcs and redis_secret:
            pw = env.get("HOLDFAST_REDIS_PASSWORD_FILE")
            if not pw or pw not in files or files[pw][:2] != ("Secret", redis_secret[0]) or \
                    files[pw][2] != redis_secret[1]:
                problem(obj, f"{c['name']}: the Redis password is not the one Redis requires ({redis_secret[0]})")
        if "HOLDFAST_KAFKA_BROKERS" in srcs and listener:
            props = kafka_props(env, files)
            if props.get("security.protocol", "").upper() != "SASL_SSL" or \
                    props.get("sasl.mechanism", props.get("sasl.mechanisms")) != "SCRAM-SHA-512":
                problem(obj, f"{c['name']}: Kafka properties are not SASL_SSL with SCRAM-SHA-512")
            ca = props.get("ssl.ca.location")
            if ca not in files or files[ca][1] != f"{next(iter(kafkas))}-cluster-ca-cert":
                problem(obj, f"{c['name']}: ssl.ca.location {ca} is not the Kafka cluster CA")
            for k, v in props.items():
                if v.startswith("@") and not v.startswith("@@") and v[1:] not in files:
                    problem(obj, f"{c['name']}: {k} reads {v[1:]}, which is not mounted")
            user = by_kind.get("KafkaUser", {}).get(props.get("sasl.username"))
            pwfile = props.get("sasl.password", "")[1:]
            if not user:
                problem(obj, f"{c['name']}: sasl.username {props.get('sasl.username')} is no KafkaUser")
                continue
            if pwfile not in files or files[pwfile][:3] != ("Secret", user["metadata"]["name"], "password"):
                problem(obj, f"{c['name']}: the password file is not KafkaUser {user['metadata']['name']}'s Secret")
            if user["spec"].get("authentication", {}).get("type") != "scram-sha-512":
                problem(user, "not a SCRAM-SHA-512 user")
            kafka_users_used.setdefault(user["metadata"]["name"], set()).add(binary)
            topic = cm.get("topic")
            rules = KAFKA_NEEDS.get(binary, {})
            for what, op in rules.get("needs", []):
                rtype, _, rname = what.partition(":")
                if not acl_allows(user, rtype, rname or topic, op):
                    problem(user, f"{binary} needs {op} on {rtype} {rname or topic}")
            for what, op in rules.get("never", []):
                rtype, _, rname = what.partition(":")
                if acl_allows(user, rtype, rname or topic, op):
                    problem(user, f"{binary} may {op} {rtype} {rname or topic}: it only reads")
for name, binaries in kafka_users_used.items():
    if len(binaries) > 1:
        problems.append(f"KafkaUser/{name}: shared by {sorted(binaries)} (one user per service)")
for obj, tmpl in workloads():
    for c in tmpl["spec"]["containers"]:
        if holdfast_binary(c)[0] == "holdfast-gateway":
            env = {e["name"]: e for e in c.get("env", [])}
            ref = env.get("HOLDFAST_ALLOWED_ORIGINS", {}).get("valueFrom", {}).get("configMapKeyRef")
            value = env.get("HOLDFAST_ALLOWED_ORIGINS", {}).get("value")
            if ref:
                value = by_kind.get("ConfigMap", {}).get(ref["name"], {}).get("data", {}).get(ref["key"])
            if not value or "*" in value.split(","):
                problem(obj, f"{c['name']}: no explicit HOLDFAST_ALLOWED_ORIGINS (any web page may connect)")

for p in problems:
    print(f"k8s_check: {p}")
print(f"k8s_check: {len(docs)} objects, {len(problems)} problems")
sys.exit(1 if problems else 0)
