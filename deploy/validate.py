#!/usr/bin/env python3
"""Validates everything under deploy/ — run it through deploy/validate.sh, which provides
the tools (kubernetes-validate, jsonschema, PyYAML) in a throwaway virtualenv.

Checks, all offline:
  1. Kubernetes manifests (deploy/kubernetes/*.yaml): core kinds against the Kubernetes JSON
     schemas shipped inside kubernetes-validate (strict: unknown fields are errors), for
     every version in --kube-version; a core kind without a schema is an error.
     CloudNativePG kinds against deploy/schemas/cnpg-*.schema.json.
  2. kustomization.yaml: lists every manifest of the folder and nothing missing; namespaces agree.
  3. Consistency of the hub's resources with each other and with the hub's code:
     settings names exist in src/, files named by settings are mounted, selectors match,
     probes, security context, termination grace vs. shutdown grace.
  4. deploy/otel-collector.yaml: structure (deploy/schemas/otel-collector.schema.json) and
     every component a pipeline names is defined.
  5. deploy/Containerfile: multi-stage, non-root, port, entrypoint, no secrets, and every
     target Cargo.toml declares can be built from what the Containerfile copies.
  6. README.md "Operations" section documents every flag and environment variable of
     src/config.rs, src/cli/client.rs and src/cli/mod.rs.
  7. Optionally (when kubectl is on PATH): `kubectl kustomize` renders, and the rendered
     objects pass the same schema checks.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    sys.exit("validate.py needs Python >= 3.11 (tomllib)")

import jsonschema
import kubernetes_validate.utils as kv
import yaml

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
K8S = DEPLOY / "kubernetes"
SCHEMAS = DEPLOY / "schemas"

CNPG_SCHEMAS = {
    "Cluster": SCHEMAS / "cnpg-cluster.schema.json",
    "ScheduledBackup": SCHEMAS / "cnpg-scheduledbackup.schema.json",
}


class Report:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.checks = 0

    def ok(self, what: str, detail: str) -> None:
        self.checks += 1
        print(f"  ok    {what}: {detail}")

    def fail(self, what: str, detail: str) -> None:
        self.checks += 1
        self.errors.append(f"{what}: {detail}")
        print(f"  FAIL  {what}: {detail}")

    def check(self, cond: bool, what: str, ok_detail: str, fail_detail: str) -> bool:
        if cond:
            self.ok(what, ok_detail)
        else:
            self.fail(what, fail_detail)
        return cond


def rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def load_docs(path: Path, r: Report) -> list[dict] | None:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        r.fail(rel(path), f"not valid YAML: {e}")
        return None
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            r.fail(rel(path), f"document {i + 1} is not a mapping")
            return None
    return docs


def ident(doc: dict) -> str:
    return f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"


def schema_errors(schema: dict, doc: object) -> list[str]:
    v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errs = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errs]


# --------------------------------------------------------------------------------------
# 1. Objects against schemas


def validate_object(doc: dict, where: str, versions: list[str], r: Report) -> None:
    api = str(doc.get("apiVersion", ""))
    kind = str(doc.get("kind", ""))
    if not api or not kind:
        r.fail(where, "apiVersion and kind are required")
        return
    group = api.split("/")[0] if "/" in api else ""
    if group.endswith("cnpg.io"):
        schema_path = CNPG_SCHEMAS.get(kind)
        if schema_path is None:
            r.fail(where, f"{ident(doc)}: no schema for CloudNativePG kind {kind} (add one to deploy/schemas/)")
            return
        errs = schema_errors(json.loads(schema_path.read_text()), doc)
        if errs:
            for e in errs:
                r.fail(where, f"{ident(doc)}: {e}")
        else:
            r.ok(where, f"{ident(doc)} valid against {rel(schema_path)}")
        return
    if group == "kustomize.config.k8s.io":
        return  # checked by check_kustomization
    passed = []
    for version in versions:
        try:
            kv.validate(doc, version, strict=True)
            passed.append(kv.major_minor(version))
        except kv.SchemaNotFoundError as e:
            r.fail(where, f"{ident(doc)}: {e.message} (a typo in apiVersion/kind?)")
            return
        except kv.ValidationError as e:
            path = "/".join(str(p) for p in e.absolute_path) or "(root)"
            r.fail(where, f"{ident(doc)}: Kubernetes {e.version}: {path}: {e.message}")
            return
        except Exception as e:  # noqa: BLE001 — any other failure of the validator is a failure
            r.fail(where, f"{ident(doc)}: {type(e).__name__}: {e}")
            return
    r.ok(where, f"{ident(doc)} valid against Kubernetes {', '.join(passed)} (strict schemas)")


# --------------------------------------------------------------------------------------
# 2. kustomization.yaml


def check_kustomization(manifests: dict[Path, list[dict]], r: Report) -> None:
    kpath = K8S / "kustomization.yaml"
    docs = manifests.get(kpath)
    if not docs:
        r.fail(rel(kpath), "missing or empty")
        return
    k = docs[0]
    where = rel(kpath)
    if k.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or k.get("kind") != "Kustomization":
        r.fail(where, "must be apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization")
        return
    resources = k.get("resources") or []
    missing = [x for x in resources if not (K8S / x).is_file()]
    r.check(not missing, where, f"all {len(resources)} resources exist", f"listed but missing: {missing}")
    listed = {(K8S / x).resolve() for x in resources}
    unlisted = sorted(rel(p) for p in manifests if p != kpath and p.resolve() not in listed)
    r.check(not unlisted, where, "every manifest of deploy/kubernetes is listed", f"not listed: {unlisted}")
    ns = k.get("namespace")
    wrong = []
    for p, ds in manifests.items():
        for d in ds:
            if p == kpath or d.get("kind") == "Namespace":
                continue
            got = (d.get("metadata") or {}).get("namespace")
            if got != ns:
                wrong.append(f"{rel(p)} {ident(d)} namespace={got!r}")
    r.check(not wrong, where, f"every object is in namespace {ns}", f"namespace differs from {ns!r}: {wrong}")
    image_names = {i.get("name") for i in k.get("images") or []}
    for p, ds in manifests.items():
        for d in ds:
            if d.get("kind") != "Deployment":
                continue
            for c in d["spec"]["template"]["spec"].get("containers", []):
                name = c.get("image", "").rsplit("@", 1)[0].rsplit(":", 1)[0]
                r.check(
                    name in image_names,
                    where,
                    f"images: overrides {name}",
                    f"images: has no entry for {name} (container {c.get('name')})",
                )


# --------------------------------------------------------------------------------------
# 3. The hub's resources, against each other and against the code


def rust_args(path: Path) -> list[dict]:
    """(field, long flag, env) of every clap #[arg(...)] of a Rust file."""
    text = path.read_text()
    out = []
    pat = re.compile(
        r"#\[arg\((?P<attr>.*?)\)\]\s*(?:(?:///[^\n]*|#\[[^\n]*\])\s*)*(?:pub\s+)?(?P<field>[a-z_][a-z0-9_]*)\s*:",
        re.S,
    )
    for m in pat.finditer(text):
        attr, field = m.group("attr"), m.group("field")
        long = None
        lm = re.search(r'\blong\b(?:\s*=\s*"([^"]+)")?', attr)
        if lm:
            long = lm.group(1) or field.replace("_", "-")
        em = re.search(r'\benv\s*=\s*"([^"]+)"', attr)
        out.append({"field": field, "long": long, "env": em.group(1) if em else None, "file": rel(path)})
    return out


def code_args() -> list[dict]:
    files = [ROOT / "src" / "config.rs", ROOT / "src" / "cli" / "client.rs", ROOT / "src" / "cli" / "mod.rs"]
    return [a for f in files if f.is_file() for a in rust_args(f)]


def find(manifests: dict[Path, list[dict]], kind: str, name: str) -> dict | None:
    for ds in manifests.values():
        for d in ds:
            if d.get("kind") == kind and (d.get("metadata") or {}).get("name") == name:
                return d
    return None


def under(path: str, mounts: dict[str, dict]) -> tuple[str, dict] | None:
    for mp, vol in mounts.items():
        if path.startswith(mp.rstrip("/") + "/"):
            return mp, vol
    return None


def check_hub(manifests: dict[Path, list[dict]], r: Report) -> None:
    where = "hub resources"
    dep = find(manifests, "Deployment", "ghthub")
    cm = find(manifests, "ConfigMap", "ghthub")
    svc = find(manifests, "Service", "ghthub")
    pdb = find(manifests, "PodDisruptionBudget", "ghthub")
    netpol = find(manifests, "NetworkPolicy", "ghthub")
    if not all([dep, cm, svc, pdb, netpol]):
        r.fail(where, "expected Deployment, ConfigMap, Service, PodDisruptionBudget and NetworkPolicy named ghthub")
        return
    data: dict[str, str] = cm.get("data") or {}
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels") or {}
    containers = pod.get("containers") or []
    hub = next((c for c in containers if c.get("name") == "ghthub"), None)
    if hub is None:
        r.fail(where, "Deployment ghthub has no container named ghthub")
        return

    # Setting names: every GHTHUB_* key is an env var the hub (or the probe script) reads.
    known = {a["env"] for a in code_args() if a["env"]}
    r.check(bool(known), where, f"{len(known)} environment variables found in src/", "no env var found in src/")
    env_names = list(data) + [e["name"] for e in hub.get("env") or []]
    unknown = [
        n
        for n in env_names
        if n.startswith("GHTHUB_")
        and n not in known
        and not n.startswith("GHTHUB_PROBE_")
        and n != "GHTHUB_DB_URI"
    ]
    r.check(
        not unknown,
        "configmap.yaml/deployment.yaml",
        "every GHTHUB_* setting is one the hub reads (src/config.rs, src/cli/)",
        f"unknown settings (typo, or renamed in src/?): {unknown}",
    )
    for flag_env in ("GHTHUB_REQUIRE_CLIENT_CERT",):
        if flag_env in data:
            r.check(
                data[flag_env] in ("true", "false"),
                "configmap.yaml",
                f"{flag_env} is a clap boolean (true/false)",
                f"{flag_env}={data[flag_env]!r}: clap accepts only true or false",
            )
    numeric = [
        "GHTHUB_DB_MAX_CONNECTIONS",
        "GHTHUB_REQUEST_TIMEOUT_SECS",
        "GHTHUB_MAX_MESSAGE_BYTES",
        "GHTHUB_MAX_CONCURRENT_STREAMS",
        "GHTHUB_SHUTDOWN_GRACE_SECS",
    ]
    bad = [k for k in numeric if k in data and not str(data[k]).isdigit()]
    r.check(not bad, "configmap.yaml", "numeric settings are integers", f"not integers: {bad}")
    listen = data.get("GHTHUB_LISTEN", "")
    r.check(
        listen.startswith("0.0.0.0:") or listen.startswith("[::]:"),
        "configmap.yaml",
        f"GHTHUB_LISTEN={listen} (all interfaces)",
        f"GHTHUB_LISTEN={listen!r}: the hub must listen on all interfaces in a pod",
    )
    port = int(listen.rsplit(":", 1)[-1]) if listen.rsplit(":", 1)[-1].isdigit() else None

    # Env var references $(VAR) in env values are defined earlier.
    defined = set(data)
    for e in hub.get("env") or []:
        for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(e.get("value", ""))):
            r.check(
                ref in defined,
                "deployment.yaml",
                f"env {e['name']} references {ref}, defined before it",
                f"env {e['name']} references $({ref}), not defined before it",
            )
        defined.add(e["name"])
    db = next((e for e in hub.get("env") or [] if e["name"] == "DATABASE_URL"), None)
    r.check(
        db is not None and "sslmode=verify-full" in str(db.get("value", "")),
        "deployment.yaml",
        "DATABASE_URL verifies the PostgreSQL server certificate (sslmode=verify-full)",
        "DATABASE_URL must be set with sslmode=verify-full",
    )

    # Files named by settings are mounted (and, for Secrets with items, projected).
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = {}
    for m in hub.get("volumeMounts") or []:
        if m["name"] not in volumes:
            r.fail("deployment.yaml", f"volumeMount {m['name']} has no volume")
            continue
        mounts[m["mountPath"]] = volumes[m["name"]]
    paths = {k: v for k, v in data.items() if k.endswith(("_CERT", "_KEY", "_CA")) and str(v).startswith("/")}
    for spec_ in str(data.get("GHTHUB_TOKEN_VERIFY_KEYS", "")).split(","):
        if "=" in spec_:
            kid, p = spec_.split("=", 1)
            paths[f"GHTHUB_TOKEN_VERIFY_KEYS[{kid.strip()}]"] = p.strip()
    if db is not None:
        for p in re.findall(r"sslrootcert=([^&]+)", str(db.get("value", ""))):
            paths["DATABASE_URL sslrootcert"] = p
    for name, p in paths.items():
        hit = under(p, mounts)
        if hit is None:
            r.fail("deployment.yaml", f"{name}={p} is not under any volumeMount")
            continue
        mp, vol = hit
        fname = p[len(mp.rstrip("/")) + 1 :]
        items = (vol.get("secret") or vol.get("configMap") or {}).get("items")
        if items is not None and fname not in {i["path"] for i in items}:
            r.fail("deployment.yaml", f"{name}={p}: volume {vol['name']} does not project {fname}")
        else:
            r.ok("deployment.yaml", f"{name} -> volume {vol['name']}")

    # Availability.
    replicas = spec.get("replicas", 1)
    r.check(replicas >= 2, "deployment.yaml", f"{replicas} replicas", f"replicas={replicas}: at least 2")
    min_avail = pdb["spec"].get("minAvailable")
    r.check(
        isinstance(min_avail, int) and 1 <= min_avail < replicas,
        "pdb.yaml",
        f"minAvailable {min_avail} < replicas {replicas}",
        f"minAvailable {min_avail!r} must be >= 1 and below replicas ({replicas}), or drains block",
    )
    for name, sel in (
        ("deployment.yaml selector", spec["selector"].get("matchLabels") or {}),
        ("service.yaml selector", svc["spec"].get("selector") or {}),
        ("pdb.yaml selector", pdb["spec"]["selector"].get("matchLabels") or {}),
        ("networkpolicy.yaml podSelector", netpol["spec"]["podSelector"].get("matchLabels") or {}),
    ):
        r.check(
            bool(sel) and all(labels.get(k) == v for k, v in sel.items()),
            name,
            "matches the pod template labels",
            f"{sel} does not match the pod labels {labels}",
        )
    tsc = pod.get("topologySpreadConstraints") or []
    aff = (pod.get("affinity") or {}).get("podAntiAffinity")
    r.check(
        bool(tsc) or bool(aff),
        "deployment.yaml",
        f"{len(tsc)} topology spread constraints",
        "replicas must be spread (topologySpreadConstraints or podAntiAffinity)",
    )

    # Ports.
    cports = {p.get("name"): p.get("containerPort") for p in hub.get("ports") or []}
    r.check(
        port is not None and port in cports.values(),
        "deployment.yaml",
        f"container port {port} matches GHTHUB_LISTEN",
        f"container ports {cports} do not include GHTHUB_LISTEN's port {port}",
    )
    for sp in svc["spec"].get("ports") or []:
        tp = sp.get("targetPort")
        r.check(
            (tp in cports) if isinstance(tp, str) else (tp in cports.values()),
            "service.yaml",
            f"port {sp.get('port')} -> container port {tp} (appProtocol {sp.get('appProtocol')})",
            f"targetPort {tp!r} is not a container port {cports}",
        )
    ingress_ports = {p.get("port") for rule in netpol["spec"].get("ingress") or [] for p in rule.get("ports") or []}
    r.check(
        ingress_ports == {port} or ingress_ports == {"grpc"},
        "networkpolicy.yaml",
        f"ingress on port {port} only",
        f"ingress ports {ingress_ports}: only the gRPC port {port}",
    )

    # Probes: exec ghthub-probe (TLS), not native grpc (plaintext).
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = hub.get(probe)
        cmd = ((p or {}).get("exec") or {}).get("command") or []
        r.check(
            bool(cmd) and cmd[0].endswith("ghthub-probe") and "grpc" not in (p or {}),
            "deployment.yaml",
            f"{probe}: {' '.join(cmd)}",
            f"{probe} must exec ghthub-probe (native grpc probes cannot speak TLS): {p}",
        )
    for k in ("GHTHUB_PROBE_CA", "GHTHUB_PROBE_SERVER_NAME"):
        r.check(k in data, "configmap.yaml", f"{k} set for the probes", f"{k} missing: the probes need it")
    if data.get("GHTHUB_REQUIRE_CLIENT_CERT") == "true":
        r.check(
            "GHTHUB_PROBE_CLIENT_CERT" in data and "GHTHUB_PROBE_CLIENT_KEY" in data,
            "configmap.yaml",
            "mTLS required and the probes present a client certificate",
            "GHTHUB_REQUIRE_CLIENT_CERT=true needs GHTHUB_PROBE_CLIENT_CERT/KEY, or every probe fails",
        )

    # Graceful shutdown: the kubelet must not SIGKILL during the hub's own grace + drain.
    grace = int(data.get("GHTHUB_SHUTDOWN_GRACE_SECS", 2))
    timeout = int(data.get("GHTHUB_REQUEST_TIMEOUT_SECS", 30))
    tgp = pod.get("terminationGracePeriodSeconds", 30)
    r.check(
        tgp >= grace + timeout + 5,
        "deployment.yaml",
        f"terminationGracePeriodSeconds {tgp} >= shutdown grace {grace} + request timeout {timeout} + 5",
        f"terminationGracePeriodSeconds {tgp} < shutdown grace {grace} + request timeout {timeout} + 5",
    )

    # Security context.
    psc = pod.get("securityContext") or {}
    csc = hub.get("securityContext") or {}
    checks = {
        "runAsNonRoot": psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True,
        "readOnlyRootFilesystem": csc.get("readOnlyRootFilesystem") is True,
        "allowPrivilegeEscalation false": csc.get("allowPrivilegeEscalation") is False,
        "capabilities drop ALL": "ALL" in ((csc.get("capabilities") or {}).get("drop") or []),
        "seccomp RuntimeDefault": ((csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type"))
        == "RuntimeDefault",
        "no service account token": pod.get("automountServiceAccountToken") is False,
    }
    for name, good in checks.items():
        r.check(good, "deployment.yaml", f"securityContext: {name}", f"securityContext: {name} is required")
    res = hub.get("resources") or {}
    r.check(
        bool((res.get("limits") or {}).get("memory")) and bool((res.get("requests") or {}).get("memory")),
        "deployment.yaml",
        f"memory request {res.get('requests', {}).get('memory')} / limit {res.get('limits', {}).get('memory')}",
        "memory requests and limits are required",
    )
    writable = {m["mountPath"] for m in hub.get("volumeMounts") or [] if not m.get("readOnly")}
    data_dir = data.get("GHTHUB_DATA_DIR", "data")
    r.check(
        any(data_dir == w or data_dir.startswith(w.rstrip("/") + "/") for w in writable),
        "deployment.yaml",
        f"GHTHUB_DATA_DIR {data_dir} is on a writable volume (root filesystem read-only)",
        f"GHTHUB_DATA_DIR {data_dir} must be under a writable volumeMount {sorted(writable)}",
    )


# --------------------------------------------------------------------------------------
# 4. OpenTelemetry collector


def check_otel(r: Report) -> None:
    path = DEPLOY / "otel-collector.yaml"
    where = rel(path)
    docs = load_docs(path, r)
    if docs is None:
        return
    if len(docs) != 1:
        r.fail(where, f"expected one YAML document, found {len(docs)}")
        return
    cfg = docs[0]
    schema_path = SCHEMAS / "otel-collector.schema.json"
    errs = schema_errors(json.loads(schema_path.read_text()), cfg)
    for e in errs:
        r.fail(where, e)
    if errs:
        return
    r.ok(where, f"parses; top-level keys {sorted(cfg)} valid against {rel(schema_path)}")
    sections = {"receivers": "receivers", "processors": "processors", "exporters": "exporters"}
    for pname, pipe in cfg["service"]["pipelines"].items():
        for key, section in sections.items():
            for comp in pipe.get(key) or []:
                r.check(
                    comp in (cfg.get(section) or {}),
                    where,
                    f"pipeline {pname}: {key[:-1]} {comp} is defined",
                    f"pipeline {pname}: {key[:-1]} {comp!r} is not defined under {section}",
                )
        procs = pipe.get("processors") or []
        if procs:
            r.check(
                procs[0].split("/")[0] == "memory_limiter",
                where,
                f"pipeline {pname}: memory_limiter first",
                f"pipeline {pname}: memory_limiter must be the first processor",
            )
        r.check(
            any(e.split("/")[0] in ("otlp", "otlp_grpc", "otlphttp", "otlp_http") for e in pipe["exporters"]),
            where,
            f"pipeline {pname}: exports OTLP to a backend",
            f"pipeline {pname}: no OTLP exporter",
        )
    for ext in cfg["service"].get("extensions") or []:
        r.check(
            ext in (cfg.get("extensions") or {}),
            where,
            f"extension {ext} is defined",
            f"extension {ext!r} is not defined",
        )
    grpc = (((cfg.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}).get("grpc")
    r.check(
        grpc is not None and str((grpc or {}).get("endpoint", ":4317")).endswith(":4317"),
        where,
        "OTLP/gRPC receiver on 4317 (the hub's exporter)",
        "the otlp receiver must serve gRPC on 4317: the hub exports OTLP over gRPC",
    )


# --------------------------------------------------------------------------------------
# 5. Containerfile


def containerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split(None, 1)
        out.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
    return out


def check_containerfile(r: Report) -> None:
    path = DEPLOY / "Containerfile"
    where = rel(path)
    ins = containerfile_instructions(path.read_text())
    froms = [a for i, a in ins if i == "FROM"]
    r.check(len(froms) >= 2, where, f"multi-stage ({len(froms)} stages)", "must be multi-stage")
    last = max(idx for idx, (i, _) in enumerate(ins) if i == "FROM")
    final = ins[last:]
    users = [a for i, a in final if i == "USER"]
    r.check(
        bool(users) and users[-1].split(":")[0] not in ("root", "0"),
        where,
        f"final stage runs as USER {users[-1] if users else '?'}",
        "final stage must set a non-root USER",
    )
    r.check(
        any(i == "EXPOSE" and "50051" in a.split() for i, a in final),
        where,
        "EXPOSE 50051",
        "final stage must EXPOSE 50051",
    )
    ep = [a for i, a in final if i == "ENTRYPOINT"]
    try:
        ep_list = json.loads(ep[-1]) if ep else []
    except json.JSONDecodeError:
        ep_list = []
    r.check(
        len(ep_list) >= 2 and ep_list[0].endswith("ghthub") and ep_list[1] == "serve",
        where,
        f"ENTRYPOINT {ep_list}",
        "ENTRYPOINT must be the exec form [.../ghthub, serve]",
    )
    env_listen = any(i == "ENV" and re.search(r"GHTHUB_LISTEN=0\.0\.0\.0:50051", a) for i, a in final)
    r.check(env_listen, where, "ENV GHTHUB_LISTEN=0.0.0.0:50051", "final stage must set GHTHUB_LISTEN=0.0.0.0:50051")
    secretish = [
        a
        for i, a in ins
        if i in ("ENV", "ARG") and re.search(r"(PASSWORD|SECRET|PRIVATE|TOKEN|DATABASE_URL)\w*\s*=", a, re.I)
    ]
    r.check(not secretish, where, "no secret-like ENV/ARG", f"secret-like ENV/ARG baked in: {secretish}")
    copies_all = [a for i, a in ins if i in ("COPY", "ADD") and re.search(r"(^|\s)\.(\s|$)", a.split("#")[0])]
    r.check(not copies_all, where, "never copies the whole context", f"COPY/ADD of the whole context: {copies_all}")
    r.check(
        any(i == "COPY" and "grpc_health_probe" in a for i, a in final)
        and any(i == "COPY" and "ghthub-probe" in a for i, a in final),
        where,
        "ships grpc_health_probe and ghthub-probe (the exec probes)",
        "final stage must contain grpc_health_probe and deploy/ghthub-probe",
    )
    # Every context path the build COPYs exists.
    copied = []
    for i, a in ins:
        if i != "COPY" or "--from=" in a:
            continue
        args = [x for x in a.split() if not x.startswith("--")]
        copied += [s.rstrip("/") for s in args[:-1]]
    missing = [c for c in copied if not (ROOT / c).exists()]
    r.check(not missing, where, f"COPY sources exist: {copied}", f"COPY sources missing in the repository: {missing}")
    check_cargo_targets(set(copied), r)


def check_cargo_targets(copied: set[str], r: Report) -> None:
    """The dependency layer builds from Cargo.toml + a stub of src/lib.rs, src/main.rs and
    src/bin/**; the final build from the copied paths. Cargo refuses declared targets without
    `path` whose default file is missing, and builds every [[bin]]."""
    where = "Cargo.toml vs deploy/Containerfile"
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    problems = []

    def copied_path(p: str) -> bool:
        p = p.lstrip("./")
        return any(p == c or p.startswith(c + "/") for c in copied)

    build = manifest.get("package", {}).get("build", "build.rs")
    if build and (ROOT / str(build)).exists() and not copied_path(str(build)):
        problems.append(f"build script {build} is not copied")
    lib = manifest.get("lib", {}).get("path", "src/lib.rs")
    if lib != "src/lib.rs":
        problems.append(f"[lib] path {lib}: the stub skeleton provides src/lib.rs only")
    for b in manifest.get("bin", []):
        p = b.get("path") or (f"src/bin/{b['name']}.rs" if b.get("name") != manifest["package"]["name"] else "src/main.rs")
        if not (p == "src/main.rs" or p.startswith("src/bin/")):
            problems.append(f"[[bin]] {b.get('name')} at {p}: the skeleton stubs src/main.rs and src/bin/** only")
    for kind in ("bench", "example", "test"):
        for t in manifest.get(kind, []):
            if "path" not in t:
                problems.append(
                    f"[[{kind}]] {t.get('name')} has no `path`: cargo then requires its file even to build "
                    "the binary, and the dependency layer has none; add `path = \"...\"`"
                )
    members = manifest.get("workspace", {}).get("members", [])
    for m in members:
        if m not in (".",) and not copied_path(m):
            problems.append(f"workspace member {m} is not copied")
    if problems:
        for p in problems:
            r.fail(where, p)
    else:
        r.ok(where, "every declared target builds from the copied paths and the stub skeleton")


# --------------------------------------------------------------------------------------
# 6. README


def check_readme(r: Report) -> None:
    path = ROOT / "README.md"
    where = "README.md Operations"
    text = path.read_text()
    m = re.search(r"^## Operations\s*$", text, re.M)
    if not m:
        r.fail(where, "no '## Operations' section")
        return
    section = text[m.end() :]
    nxt = re.search(r"^## ", section, re.M)
    section = section[: nxt.start()] if nxt else section
    args = code_args()
    serve_and_global = [a for a in args if a["file"] != "src/cli/mod.rs" or a["env"]]
    # mod.rs: every option of `token` and `certs` and the global ones are documented too,
    # but only the env-backed ones are mandatory here (subcommand options of the clients
    # are documented by `ghthub <command> --help`).
    missing = []
    for a in serve_and_global:
        if a["long"] and not re.search(rf"`--{re.escape(a['long'])}(?![\w-])", section):
            missing.append(f"--{a['long']} ({a['file']})")
        if a["env"] and not re.search(rf"`{re.escape(a['env'])}`", section):
            missing.append(f"{a['env']} ({a['file']})")
    r.check(
        not missing,
        where,
        f"documents all {len(serve_and_global)} settings of src/config.rs, src/cli/client.rs, src/cli/mod.rs",
        f"missing from the configuration table: {missing}",
    )


# --------------------------------------------------------------------------------------
# 7. kubectl kustomize (optional)


def check_rendered(versions: list[str], r: Report) -> None:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        print("  skip  kubectl kustomize: kubectl not on PATH (optional check)")
        return
    proc = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        r.fail("kubectl kustomize deploy/kubernetes", proc.stderr.strip() or "failed")
        return
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    r.ok("kubectl kustomize deploy/kubernetes", f"renders {len(docs)} objects")
    for d in docs:
        validate_object(d, "  rendered", versions, r)


# --------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--kube-version",
        action="append",
        help="Kubernetes version(s) to validate against (default: 1.30.0 and the newest bundled)",
    )
    ap.add_argument("--no-kubectl", action="store_true", help="skip the optional kubectl kustomize check")
    args = ap.parse_args()
    versions = args.kube_version or ["1.30.0", kv.latest_version()]
    r = Report()

    print(f"== Kubernetes manifests (kubernetes-validate schemas {', '.join(versions)}; CloudNativePG: deploy/schemas)")
    manifests: dict[Path, list[dict]] = {}
    files = sorted(K8S.glob("*.yaml")) + sorted(K8S.glob("*.yml"))
    if not files:
        r.fail(rel(K8S), "no manifest found")
    for f in files:
        docs = load_docs(f, r)
        if docs is None:
            continue
        manifests[f] = docs
        if not docs:
            r.fail(rel(f), "empty")
        for d in docs:
            validate_object(d, rel(f), versions, r)

    print("== kustomization.yaml")
    check_kustomization(manifests, r)
    print("== hub resources: consistency with each other and with src/")
    check_hub(manifests, r)
    print("== OpenTelemetry collector configuration")
    check_otel(r)
    print("== Containerfile and Cargo.toml")
    check_containerfile(r)
    print("== README.md Operations section")
    check_readme(r)
    print("== rendered kustomization")
    if args.no_kubectl:
        print("  skip  kubectl kustomize: --no-kubectl")
    else:
        check_rendered(versions, r)

    if r.errors:
        print(f"\nvalidate.py: {len(r.errors)} of {r.checks} checks FAILED")
        return 1
    print(f"\nvalidate.py: all {r.checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
