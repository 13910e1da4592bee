#!/usr/bin/python3
"""chaos_k8s_check.py RENDERED.yaml COMMANDS: the kubectl commands the chaos
scenarios run with --k8s (their --dry-run output, one per line) against the
rendered deploy/k8s overlay: every namespace, resource, label selector,
port and container they name must exist there, and nothing they scale may
be owned by a HorizontalPodAutoscaler (it would undo the scale).

Resources the operators create are derived from their custom resources:
CloudNativePG Cluster X gives Service X-rw, Secret X-app and pods labelled
cnpg.io/cluster=X; Strimzi Kafka X with KafkaNodePool P gives pods labelled
strimzi.io/cluster=X, strimzi.io/pool-name=P. Exit 1 listing every problem."""
import os, shlex, sys

import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if isinstance(d, dict)]
commands = [l.strip() for l in open(sys.argv[2]) if l.startswith("kubectl ")]
problems = []
objs = {(d["kind"], d["metadata"]["name"]): d for d in docs}
namespaces = {d["metadata"].get("namespace") for d in docs} - {None}
# Secrets the operator creates (deploy/k8s/base/secret.template.yaml).
OPERATOR_SECRETS = {d["metadata"]["name"] for d in yaml.safe_load_all(open(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "../../deploy/k8s/base/secret.template.yaml")))
    if d and d.get("kind") == "Secret"}


def have(kind, name):
    return (kind, name) in objs


def pod_template(d):
    return d.get("spec", {}).get("template", {})


def workloads():
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def selector_ok(sel):
    pairs = dict(p.split("=", 1) for p in sel.split(","))
    if "app.kubernetes.io/name" in pairs:
        want = pairs.pop("app.kubernetes.io/name")
        if not any(pod_template(w).get("metadata", {}).get("labels", {})
                   .get("app.kubernetes.io/name") == want for w in workloads()):
            return f"no pod template labelled app.kubernetes.io/name={want}"
    if "cnpg.io/cluster" in pairs:
        if not have("Cluster", pairs.pop("cnpg.io/cluster")):
            return "no CloudNativePG Cluster of that name"
        if pairs.pop("cnpg.io/instanceRole", "primary") != "primary":
            return "unknown cnpg.io/instanceRole"
    if "strimzi.io/cluster" in pairs:
        cluster = pairs.pop("strimzi.io/cluster")
        if not have("Kafka", cluster):
            return f"no Kafka {cluster}"
        pool = pairs.pop("strimzi.io/pool-name", None)
        if pool is not None:
            p = objs.get(("KafkaNodePool", pool))
            if not p or p["metadata"].get("labels", {}).get("strimzi.io/cluster") != cluster:
                return f"no KafkaNodePool {pool} of Kafka {cluster}"
            if "broker" not in p["spec"].get("roles", []):
                return f"KafkaNodePool {pool} has no broker role"
    return f"unchecked labels {pairs}" if pairs else None


def container_ports(w):
    return {p.get("containerPort") for c in pod_template(w).get("spec", {}).get("containers", [])
            for p in c.get("ports", [])}


def resource_ok(ref, port=None):
    kind, _, name = ref.partition("/")
    if kind == "pod" and name.startswith("SELECTED-BY-"):
        sel = name[len("SELECTED-BY-"):]
        bad = selector_ok(sel)
        if bad:
            return bad
        if port is not None and sel.startswith("app.kubernetes.io/name="):
            app = sel.split("=", 1)[1].split(",")[0]
            if not any(port in container_ports(w) for w in workloads()
                       if pod_template(w).get("metadata", {}).get("labels", {})
                       .get("app.kubernetes.io/name") == app):
                return f"no container of {app} listens on {port}"
        return None
    if kind == "pod":
        sts, _, ordinal = name.rpartition("-")
        return None if have("StatefulSet", sts) and ordinal.isdigit() else f"no StatefulSet for {name}"
    if kind == "svc":
        if name.endswith("-rw") and have("Cluster", name[:-3]):
            return None if port in (None, 5432) else f"{name} serves 5432, not {port}"
        s = objs.get(("Service", name))
        if not s:
            return f"no Service {name}"
        if port is not None and port not in {p.get("port") for p in s["spec"]["ports"]}:
            return f"Service {name} has no port {port}"
        return None
    kinds = {"statefulset": "StatefulSet", "deployment": "Deployment",
             "clusters.postgresql.cnpg.io": "Cluster", "kafkas.kafka.strimzi.io": "Kafka"}
    if kind not in kinds:
        return f"unknown resource kind {kind}"
    return None if have(kinds[kind], name) else f"no {kinds[kind]} {name}"


def hpa_targets():
    return {d["spec"]["scaleTargetRef"]["name"] for d in docs
            if d["kind"] == "HorizontalPodAutoscaler"}


for line in commands:
    a = shlex.split(line)[1:]
    if a[:1] != ["-n"] or a[1] not in namespaces:
        problems.append(f"{line}: namespace {a[1] if len(a) > 1 else '?'} is not the deployment's {namespaces}")
        continue
    verb, rest = a[2], a[3:]
    bad = None
    if verb == "port-forward":
        bad = resource_ok(rest[0], int(rest[1].split(":")[1]))
    elif verb == "get" and rest[0] == "secret":
        name = rest[1]
        if not (have("Secret", name) or name in OPERATOR_SECRETS
                or (name.endswith("-app") and have("Cluster", name[:-4]))):
            bad = f"no Secret {name}"
    elif verb in ("delete", "wait", "exec"):
        bad = resource_ok(rest[0])
        if not bad and verb == "exec":
            w = objs.get(("StatefulSet", rest[0].split("/")[1]))
            tool = rest[rest.index("--") + 1]
            images = [c["image"] for c in pod_template(w)["spec"]["containers"]]
            if tool == "redis-cli" and not any("redis" in i for i in images):
                bad = f"{rest[0]} runs no Redis image ({images})"
    elif verb == "rollout":
        bad = resource_ok(rest[1])
    elif verb == "scale":
        bad = resource_ok(rest[0])
        if not bad and rest[0].split("/")[1] in hpa_targets():
            bad = f"{rest[0]} is scaled by a HorizontalPodAutoscaler, which would undo this"
    else:
        bad = f"unknown verb {verb}"
    if bad:
        problems.append(f"{line}: {bad}")

print(f"chaos_k8s_check: {len(commands)} kubectl commands, {len(problems)} problems")
for p in problems:
    print("  " + p)
sys.exit(1 if problems or not commands else 0)
