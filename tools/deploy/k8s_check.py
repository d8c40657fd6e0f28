#!/usr/bin/python3
"""Checks the manifests `kubectl kustomize tools/deploy/k8s` assembles.

Kubernetes' own model classes (Debian's python3-kubernetes) are the schema:
every field of every object must be one the API defines, with a value of its
type (a misspelt field, which the API server would silently drop, is an
error here). Then what ties the objects together: selectors match their pod
labels, the headless Service selects the DaemonSet's pods on its port, every
Secret a pod mounts is in the output, the scheduler's Service selects its
pods and it finds the nodes through the headless Service, and the
DaemonSet's and the Deployment's flags are ones picos-node and
picos-scheduler know (checked by running them, by //tools/deploy:k8s_test).

    k8s_check.py all.yaml [--print-node-args]
"""
import re
import sys

import kubernetes.client as k8s
import yaml

KINDS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("batch/v1", "Job"): "V1Job",
}
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object,
              "datetime": str, "date": str}


def check_value(value, type_name, path, errors):
    if value is None:
        return
    m = re.fullmatch(r"list\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, v in enumerate(value):
            check_value(v, m.group(1), f"{path}[{i}]", errors)
        return
    m = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if m:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for k, v in value.items():
            check_value(v, m.group(1), f"{path}.{k}", errors)
        return
    if type_name in PRIMITIVES:
        want = PRIMITIVES[type_name]
        if want is not object and (not isinstance(value, want) or
                                   (want is int and isinstance(value, bool))):
            errors.append(f"{path}: expected {type_name}, got {value!r}")
        return
    cls = getattr(k8s, type_name, None)
    if cls is None:
        errors.append(f"{path}: unknown model {type_name}")
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({type_name}), got {value!r}")
        return
    by_json = {json: attr for attr, json in cls.attribute_map.items()}
    for key, v in value.items():
        if key not in by_json:
            errors.append(f"{path}: {type_name} has no field '{key}'")
            continue
        check_value(v, cls.openapi_types[by_json[key]], f"{path}.{key}", errors)


def pod_specs(doc):
    kind = doc.get("kind")
    if kind in ("DaemonSet", "Deployment", "Job"):
        return [doc["spec"]["template"]]
    return []


def main():
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    errors = []
    by_kind = {}
    for d in docs:
        key = (d.get("apiVersion"), d.get("kind"))
        name = d.get("metadata", {}).get("name", "?")
        if key not in KINDS:
            errors.append(f"{key[1]} {name}: not a kind this check knows ({key[0]})")
            continue
        check_value(d, KINDS[key], f"{key[1]}/{name}", errors)
        by_kind.setdefault(key[1], []).append(d)

    secrets = {d["metadata"]["name"] for d in by_kind.get("Secret", [])}
    for kind in ("DaemonSet", "Deployment", "Job"):
        for d in by_kind.get(kind, []):
            name = d["metadata"]["name"]
            template = d["spec"]["template"]
            labels = template.get("metadata", {}).get("labels", {})
            selector = d["spec"].get("selector", {}).get("matchLabels")
            if selector is not None and any(labels.get(k) != v for k, v in selector.items()):
                errors.append(f"{kind}/{name}: selector {selector} does not match its pod labels {labels}")
            for vol in template["spec"].get("volumes", []):
                s = vol.get("secret")
                if s and s.get("secretName") not in secrets:
                    errors.append(f"{kind}/{name}: mounts Secret {s.get('secretName')}, not in the output")
            for c in template["spec"].get("containers", []):
                if d["metadata"].get("namespace") != "picos":
                    errors.append(f"{kind}/{name}: not in namespace picos")
                if not c.get("securityContext", {}).get("allowPrivilegeEscalation") is False:
                    errors.append(f"{kind}/{name}: container {c['name']} may escalate privileges")

    daemonsets = by_kind.get("DaemonSet", [])
    if len(daemonsets) != 1:
        errors.append(f"expected one DaemonSet, found {len(daemonsets)}")
    services = by_kind.get("Service", [])
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    if not headless:
        errors.append("no headless Service (clusterIP: None) for static peers")
    if daemonsets and headless:
        ds = daemonsets[0]
        pod_labels = ds["spec"]["template"]["metadata"]["labels"]
        svc = headless[0]
        if any(pod_labels.get(k) != v for k, v in svc["spec"]["selector"].items()):
            errors.append("the headless Service does not select the DaemonSet's pods")
        ports = {p.get("name") for c in ds["spec"]["template"]["spec"].get("containers", [])
                 for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            if isinstance(p.get("targetPort"), str) and p["targetPort"] not in ports:
                errors.append(f"the Service's targetPort {p['targetPort']} is no port of the node pods")

    # The shared scheduler: one Deployment, a Service selecting its pods on
    # its port, and the node pods found through the headless Service.
    deployments = [d for d in by_kind.get("Deployment", []) if d["metadata"]["name"] == "picos-scheduler"]
    if len(deployments) != 1:
        errors.append(f"expected the picos-scheduler Deployment, found {len(deployments)}")
    else:
        dep = deployments[0]
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        if dep["spec"].get("replicas", 1) != 1:
            errors.append("picos-scheduler: more than one replica (its shares live in memory)")
        ports = {p.get("name") for c in dep["spec"]["template"]["spec"].get("containers", [])
                 for p in c.get("ports", [])}
        svcs = [s for s in services if s["metadata"]["name"] == "picos-scheduler"]
        if len(svcs) != 1:
            errors.append("no Service picos-scheduler")
        else:
            svc = svcs[0]
            if any(pod_labels.get(k) != v for k, v in svc["spec"]["selector"].items()):
                errors.append("the Service picos-scheduler does not select the scheduler's pods")
            for p in svc["spec"]["ports"]:
                if isinstance(p.get("targetPort"), str) and p["targetPort"] not in ports:
                    errors.append(f"picos-scheduler's targetPort {p['targetPort']} is no port of its pods")
        args = (dep["spec"]["template"]["spec"].get("containers") or [{}])[0].get("args", [])
        if headless and not any(a.startswith("--node_dns=" + headless[0]["metadata"]["name"] + ".")
                                for a in args):
            errors.append("picos-scheduler does not find the nodes through the headless Service (--node_dns)")

    for e in errors:
        print("k8s_check:", e)
    if "--print-node-args" in sys.argv and daemonsets:
        c = (daemonsets[0]["spec"]["template"]["spec"].get("containers") or [{}])[0]
        print("NODE_ARGS", " ".join(c.get("args", [])))
    if "--print-node-args" in sys.argv and deployments:
        c = (deployments[0]["spec"]["template"]["spec"].get("containers") or [{}])[0]
        print("SCHEDULER_ARGS", " ".join(c.get("args", [])))
    print(f"k8s_check: {len(docs)} objects, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
