#!/usr/bin/env python3
"""Offline checks of the deployment kit in deploy/, run by tests/deploy.rs.

- every YAML file parses;
- the kustomization's resources and generated ConfigMap validate against the
  Kubernetes OpenAPI schemas bundled with kubernetes-validate (strict: no
  unknown fields), for the oldest Kubernetes the kit supports and the newest
  one bundled; with kubectl present, `kubectl kustomize` output too;
- the ServiceMonitor (a CRD, not in those schemas) against
  servicemonitor.schema.json beside this file;
- the sidecar wiring is consistent: native sidecar, probes on the metrics
  port from proxy.toml, Secret-provided admin.dsn, DATABASE_URL on the
  proxy's loopback port, grace period above preStop + shutdown_timeout;
- the alert rules pass `promtool check rules` and `promtool test rules`;
- every PromQL expression of the Grafana dashboard passes promtool's parser.

Exit status: 0 all passed, 1 a check failed, 3 a tool is missing (the
checks that could run did; the missing ones are named on stderr).
"""

import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
HERE = pathlib.Path(__file__).resolve().parent
# Native sidecars and the preStop sleep action are on by default from 1.30.
KUBE_VERSIONS = ["1.30.0"]

failures = []
missing = []


def check(ok, message):
    if not ok:
        failures.append(message)
    return ok


try:
    import yaml
except ImportError:
    print("MISSING: python module yaml (pip install pyyaml)", file=sys.stderr)
    sys.exit(3)
try:
    import tomllib
except ImportError:
    print("MISSING: python >= 3.11 (tomllib)", file=sys.stderr)
    sys.exit(3)


def load_yaml(path):
    try:
        return list(d for d in yaml.safe_load_all(path.read_text()) if d is not None)
    except yaml.YAMLError as e:
        failures.append(f"{path}: does not parse: {e}")
        return []


def duration_seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", text.strip())
    assert m, f"bad duration {text!r}"
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def build_kustomization():
    """The objects `kubectl kustomize deploy/kubernetes` would emit, minus the
    ConfigMap name hash (resources plus the generated ConfigMap)."""
    kust = load_yaml(KUBE / "kustomization.yaml")[0]
    objects = []
    for res in kust.get("resources", []):
        path = KUBE / res
        if check(path.is_file(), f"kustomization: resource {res} does not exist"):
            objects.extend(load_yaml(path))
    for gen in kust.get("configMapGenerator", []):
        data = {}
        for f in gen.get("files", []):
            if check((KUBE / f).is_file(), f"kustomization: file {f} does not exist"):
                data[f] = (KUBE / f).read_text()
        objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": gen["name"]}, "data": data})
    return kust, objects


def kube_validate(objects, label):
    try:
        import kubernetes_validate
        from kubernetes_validate.utils import latest_version
    except ImportError:
        missing.append("python module kubernetes_validate (pip install kubernetes-validate)")
        return
    try:
        import jsonschema
    except ImportError:
        missing.append("python module jsonschema")
        return
    sm_schema = json.loads((HERE / "servicemonitor.schema.json").read_text())
    for obj in objects:
        name = f"{label}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if obj.get("apiVersion", "").startswith("monitoring.coreos.com/"):
            try:
                jsonschema.validate(obj, sm_schema)
            except jsonschema.ValidationError as e:
                failures.append(f"{name}: {e.message} at {list(e.absolute_path)}")
            continue
        for version in KUBE_VERSIONS + [latest_version()]:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                failures.append(f"{name} (Kubernetes {version}): {e.message} at {list(e.path)}")
            except Exception as e:  # unknown kind/version, schema missing
                failures.append(f"{name} (Kubernetes {version}): {e}")


def kubectl_kustomize(expected):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        print("note: kubectl not installed; `kubectl kustomize` output not checked "
              "(the same objects are assembled and validated above)", file=sys.stderr)
        return
    out = subprocess.run([kubectl, "kustomize", str(KUBE)], capture_output=True, text=True)
    if not check(out.returncode == 0, f"kubectl kustomize failed: {out.stderr}"):
        return
    built = [d for d in yaml.safe_load_all(out.stdout) if d]
    kube_validate(built, "kustomize build")
    kinds = sorted(o["kind"] for o in built)
    check(kinds == sorted(o["kind"] for o in expected),
          f"kustomize build emits {kinds}, expected the kinds of the listed resources")
    cm = next(o["metadata"]["name"] for o in built if o["kind"] == "ConfigMap")
    dep = next(o for o in built if o["kind"] == "Deployment")
    vols = [v["configMap"]["name"] for v in dep["spec"]["template"]["spec"]["volumes"]
            if "configMap" in v]
    check(cm in vols, f"the Deployment does not mount the generated ConfigMap {cm}: {vols}")


def sidecar_consistency(objects):
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    dep = by_kind["Deployment"][0]
    svc = by_kind["Service"][0]
    sm = by_kind["ServiceMonitor"][0]
    cm = by_kind["ConfigMap"][0]
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    config = tomllib.loads(cm["data"]["proxy.toml"])

    sidecars = [c for c in pod.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    if not check(len(sidecars) == 1, "expected one native sidecar (initContainer with restartPolicy: Always)"):
        return
    side = sidecars[0]
    check(side["image"].split(":")[0].endswith("indexpilot"), f"sidecar image {side['image']}")

    # Configuration: the ConfigMap's file, at the path the args name.
    args = side.get("args", [])
    check(args[:1] == ["--config"], f"sidecar args must start with --config: {args}")
    mounts = {m["name"]: m["mountPath"] for m in side.get("volumeMounts", [])}
    cm_volume = next((v["name"] for v in pod["volumes"]
                      if v.get("configMap", {}).get("name") == cm["metadata"]["name"]), None)
    check(cm_volume in mounts and len(args) > 1 and args[1] == f"{mounts.get(cm_volume)}/proxy.toml",
          f"--config {args[1:2]} is not proxy.toml in the mounted ConfigMap {cm['metadata']['name']}")
    check(not config.get("admin", {}).get("dsn"), "the ConfigMap must not carry admin.dsn (credentials)")

    # Credentials from the Secret, under the environment name config.rs reads.
    env = {e["name"]: e for e in side.get("env", [])}
    secret = load_yaml(KUBE / "secret.example.yaml")[0]
    ref = env.get("INDEXPILOT_ADMIN_DSN", {}).get("valueFrom", {}).get("secretKeyRef", {})
    check(ref.get("name") == secret["metadata"]["name"] and ref.get("key") in secret["stringData"],
          f"INDEXPILOT_ADMIN_DSN must come from Secret {secret['metadata']['name']}: {ref}")

    # Ports: the app on the proxy's loopback listener, probes and scrapes on
    # metrics_listen (which must not be loopback: kubelet uses the pod IP).
    listen_host, listen_port = config["listen"].rsplit(":", 1)
    metrics_host, metrics_port = config["metrics_listen"].rsplit(":", 1)
    check(listen_host in ("127.0.0.1", "localhost", "[::1]"), f"sidecar listen {config['listen']} should be loopback")
    check(metrics_host not in ("127.0.0.1", "localhost", "[::1]"),
          f"metrics_listen {config['metrics_listen']} is loopback: probes and Prometheus cannot reach it")
    ports = {p["name"]: p["containerPort"] for p in side.get("ports", [])}
    for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")]:
        get = side.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path, f"{probe} must GET {path}: {get}")
        check(str(ports.get(get.get("port"), get.get("port"))) == metrics_port,
              f"{probe} port {get.get('port')} is not metrics_listen's {metrics_port}")
    for c in [side] + pod["containers"]:
        res = c.get("resources", {})
        check("memory" in res.get("requests", {}) and "memory" in res.get("limits", {}),
              f"container {c['name']}: memory requests and limits")
    check("cpu" in side["resources"]["requests"] and "cpu" in side["resources"]["limits"], "sidecar: cpu requests and limits")

    app = pod["containers"][0]
    url = next((e.get("value", "") for e in app.get("env", []) if e["name"] == "DATABASE_URL"), "")
    m = re.match(r"postgres(?:ql)?://[^@]*@([^:/]+):(\d+)/", url)
    check(bool(m) and m.group(1) in ("localhost", "127.0.0.1") and m.group(2) == listen_port,
          f"app DATABASE_URL {url!r} must point at localhost:{listen_port}")

    # Shutdown budget: the app's preStop sleep and the proxy's
    # shutdown_timeout must both fit in the grace period, with margin.
    grace = pod["terminationGracePeriodSeconds"]
    pre_stop = app.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    shutdown = duration_seconds(config.get("shutdown_timeout", "30s"))
    check(grace >= pre_stop + shutdown + 5,
          f"terminationGracePeriodSeconds {grace} < preStop {pre_stop} + shutdown_timeout {shutdown} + 5 s margin")

    # Scrape paths: annotations, Service, ServiceMonitor all name the port.
    ann = dep["spec"]["template"]["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/port") == metrics_port and ann.get("prometheus.io/path") == "/metrics",
          f"pod scrape annotations {ann} do not match metrics_listen port {metrics_port}")
    check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "Service selector does not match the pod labels")
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    sm_ports = [e["port"] for e in sm["spec"]["endpoints"]]
    check(all(p in svc_ports for p in sm_ports), f"ServiceMonitor endpoint ports {sm_ports} not on the Service {list(svc_ports)}")
    check(all(svc_ports[p]["targetPort"] in ports for p in sm_ports if p in svc_ports), "Service targetPort is not the sidecar's metrics port")
    svc_labels = svc["metadata"].get("labels", {})
    check(all(svc_labels.get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()),
          "ServiceMonitor selector does not match the Service's labels")


def promtool_checks():
    promtool = shutil.which("promtool")
    rules = load_yaml(DEPLOY / "prometheus" / "alerts.yaml")[0]
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert", "?")
            check({"alert", "expr", "labels", "annotations"} <= rule.keys(), f"rule {name}: alert/expr/labels/annotations")
            check(rule.get("labels", {}).get("severity") in ("critical", "warning", "info"), f"rule {name}: severity")
            check("summary" in rule.get("annotations", {}), f"rule {name}: summary annotation")
    dashboard_rules = dashboard_checks()
    if not promtool:
        missing.append("promtool (apt-get install prometheus)")
        return
    for args in (["check", "rules", str(DEPLOY / "prometheus" / "alerts.yaml")],
                 ["test", "rules", str(HERE / "alerts_test.yaml")]):
        out = subprocess.run([promtool] + args, capture_output=True, text=True)
        check(out.returncode == 0, f"promtool {' '.join(args)}:\n{out.stdout}{out.stderr}")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(dashboard_rules, f)
        f.flush()
        out = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
        check(out.returncode == 0, f"dashboard PromQL does not parse:\n{out.stdout}{out.stderr}")


def dashboard_checks():
    """Structure of the dashboard; returns its PromQL as recording rules (with
    Grafana's variables replaced) for promtool to parse."""
    dash = json.loads((DEPLOY / "grafana" / "indexpilot-dashboard.json").read_text())
    variables = {v["name"] for v in dash["templating"]["list"]}
    builtin = {"__rate_interval", "__interval", "__range", "__all", "__timeFilter"}
    text = json.dumps(dash)
    for var in set(re.findall(r"\$\{?(\w+)", text)):
        check(var in variables or var in builtin, f"dashboard uses undefined variable ${var}")
    ids = [p["id"] for p in dash["panels"]]
    check(len(ids) == len(set(ids)), "dashboard panel ids are not unique")
    exprs = []
    for p in dash["panels"] + dash["annotations"]["list"]:
        if p.get("type") == "row":
            continue
        ds = p.get("datasource", {}).get("uid", "")
        check(ds in ("${DS_PROMETHEUS}", "${DS_POSTGRES}", "-- Grafana --"), f"{p.get('title', p.get('name'))}: datasource {ds}")
        if "expr" in p:
            exprs.append(p["expr"])
        for t in p.get("targets", []):
            check(t.get("datasource", {}).get("uid") == ds, f"{p['title']}: target datasource differs from the panel's")
            check(("expr" in t) == (ds == "${DS_PROMETHEUS}"), f"{p['title']}: expr only on Prometheus targets")
            check(("rawSql" in t) == (ds == "${DS_POSTGRES}"), f"{p['title']}: rawSql only on PostgreSQL targets")
            if "expr" in t:
                exprs.append(t["expr"])
    check(len(exprs) >= 20, f"only {len(exprs)} PromQL expressions found in the dashboard")
    subst = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$job": ".*", "$instance": ".*"}
    rules = []
    for i, e in enumerate(exprs):
        for k, v in subst.items():
            e = e.replace(k, v)
        rules.append({"record": f"dashboard:expr_{i}", "expr": e})
    return {"groups": [{"name": "dashboard", "rules": rules}]}


def main():
    for path in sorted(DEPLOY.rglob("*.yaml")) + [HERE / "alerts_test.yaml"]:
        load_yaml(path)
    _, objects = build_kustomization()
    kube_validate(objects + load_yaml(KUBE / "secret.example.yaml"), "deploy/kubernetes")
    kubectl_kustomize(objects)
    sidecar_consistency(objects)
    promtool_checks()
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    for m in missing:
        print(f"MISSING: {m}", file=sys.stderr)
    if failures:
        return 1
    if missing:
        return 3
    print("deploy kit: all offline checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
