#!/usr/bin/env bash
# A real kube-apiserver + etcd + kube-controller-manager for the test suite,
# built from Debian's source package (see docs/testing.md).
#
#   scripts/test-kube.sh install      install packages, build once into $KUBE_PREFIX
#   scripts/test-kube.sh start DIR    start a cluster whose state lives in DIR;
#                                     writes DIR/kubeconfig and DIR/env
#   scripts/test-kube.sh stop DIR     stop it (controller-manager, apiserver, etcd)
#   scripts/test-kube.sh restart-apiserver DIR
#                                     start a stopped apiserver again (outage tests)
set -euo pipefail

KUBE_PREFIX="${KUBE_PREFIX:-/opt/optionsportal-kube}"
KUBE_DEB_VERSION="${KUBE_DEB_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}"
BIN="$KUBE_PREFIX/bin"

log() { echo "[test-kube] $*" >&2; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    if [[ ! -f /var/lib/apt/periodic/optionsportal-updated ]]; then
      apt-get update -qq
      mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/optionsportal-updated
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

ensure_deb_src() {
  if ! grep -rqs "deb-src" /etc/apt/sources.list.d/ /etc/apt/sources.list; then
    local src=/etc/apt/sources.list.d/debian.sources
    log "adding a deb-src entry for bookworm"
    # Same mirror and keyring as the machine's own Debian entry.
    local uris keyring
    uris=$(awk '/^URIs:/{print $2; exit}' "$src")
    keyring=$(awk '/^Signed-By:/{print $2; exit}' "$src")
    cat > /etc/apt/sources.list.d/optionsportal-deb-src.sources <<SRC
Types: deb-src
URIs: ${uris:-http://deb.debian.org/debian}
Suites: bookworm
Components: main
Signed-By: ${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}
SRC
  fi
  apt-get update -qq
}

cmd_install() {
  apt_install etcd-server etcd-client openssl curl
  if [[ -x "$BIN/kube-apiserver" && -x "$BIN/kube-controller-manager" ]]; then
    log "kube-apiserver already built in $BIN; skipping build"
    return 0
  fi
  apt_install golang-1.19-go dpkg-dev make rsync jq
  ensure_deb_src
  local work
  work=$(mktemp -d /var/tmp/optionsportal-kube-build.XXXXXX)
  log "building kube-apiserver in $work (first run on this machine only: ~10 min)"
  (
    cd "$work"
    apt-get source -qq --download-only "kubernetes=$KUBE_DEB_VERSION" 2>/dev/null \
      || apt-get source -qq --download-only kubernetes
    dpkg-source -x --no-check ./kubernetes_*.dsc src >/dev/null
    mkdir -p gopath/src/k8s.io
    ln -s "$work/src" gopath/src/k8s.io/kubernetes
    cd gopath/src/k8s.io/kubernetes
    export GOPATH="$work/gopath" GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 \
      PATH="/usr/lib/go-1.19/bin:$PATH" GOCACHE="$work/gocache" \
      KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean \
      KUBE_GIT_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1 \
      || { tail -50 "$work/build.log" >&2; exit 1; }
    mkdir -p "$BIN"
    install -m 0755 _output/local/bin/linux/*/kube-apiserver _output/local/bin/linux/*/kube-controller-manager "$BIN/"
  )
  rm -rf "$work"
  log "installed into $BIN"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# The apiserver's flags, in one place for start and restart-apiserver; it runs in
# the background and its pid goes to DIR/apiserver.pid (written by the caller).
run_apiserver() {
  local dir="$1" etcd_url="$2" api_port="$3" watch_cache="$4"
  local pki="$dir/pki"
  "$BIN/kube-apiserver" \
    --etcd-servers "$etcd_url" \
    --bind-address 127.0.0.1 --secure-port "$api_port" --insecure-port 0 \
    --advertise-address 127.0.0.1 \
    --tls-cert-file "$pki/server.crt" --tls-private-key-file "$pki/server.key" \
    --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode RBAC --anonymous-auth=false \
    --endpoint-reconciler-type none \
    --watch-cache="$watch_cache" \
    >>"$dir/logs/apiserver.log" 2>&1 &
}

cmd_start() {
  local dir="${1:?state directory}"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local pki="$dir/pki"
  mkdir -p "$pki" "$dir/etcd" "$dir/logs"
  [[ -x "$BIN/kube-apiserver" ]] || { log "no kube-apiserver in $BIN: run '$0 install'"; exit 1; }

  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=optionsportal-test-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    cat > server.cnf <<CNF
[req]
distinguished_name = dn
[dn]
[ext]
subjectAltName = IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
basicConstraints = CA:FALSE
keyUsage = digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
CNF
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout server.key -out server.csr 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile server.cnf -extensions ext -out server.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  local token
  token=$(openssl rand -hex 24)
  echo "$token,admin,uid-admin,system:masters" > "$pki/tokens.csv"

  local etcd_client etcd_peer api_port
  etcd_client=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)
  # KUBE_WATCH_CACHE=false sends watches straight to etcd, where a compaction
  # makes an old resourceVersion answer 410 Gone (the watch-expiry tests).
  local watch_cache="${KUBE_WATCH_CACHE:-true}"

  etcd --name optionsportal-test --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_client" \
    --advertise-client-urls "http://127.0.0.1:$etcd_client" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "optionsportal-test=http://127.0.0.1:$etcd_peer" \
    --unsafe-no-fsync >"$dir/logs/etcd.log" 2>&1 &
  echo $! > "$dir/etcd.pid"

  run_apiserver "$dir" "http://127.0.0.1:$etcd_client" "$api_port" "$watch_cache"
  echo $! > "$dir/apiserver.pid"

  local server="https://127.0.0.1:$api_port"
  cat > "$dir/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: $server
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
KC

  local ready=""
  for _ in $(seq 1 120); do
    if curl -fsS --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" "$server/readyz" >/dev/null 2>&1; then
      ready=1; break
    fi
    sleep 0.5
  done
  if [[ -z "$ready" ]]; then
    log "apiserver did not become ready; last log lines:"
    tail -30 "$dir/logs/apiserver.log" >&2
    cmd_stop "$dir"; exit 1
  fi

  "$BIN/kube-controller-manager" \
    --kubeconfig "$dir/kubeconfig" \
    --controllers namespace,serviceaccount,serviceaccount-token,garbagecollector,pvc-protection \
    --leader-elect=false \
    --service-account-private-key-file "$pki/sa.key" \
    --root-ca-file "$pki/ca.crt" \
    --bind-address 127.0.0.1 --secure-port 0 --port 0 \
    --use-service-account-credentials=false \
    >"$dir/logs/controller-manager.log" 2>&1 &
  echo $! > "$dir/controller-manager.pid"

  cat > "$dir/env" <<ENV
KUBECONFIG=$dir/kubeconfig
KUBE_TEST_SERVER=$server
KUBE_TEST_TOKEN=$token
KUBE_TEST_CA=$pki/ca.crt
ETCD_ENDPOINT=http://127.0.0.1:$etcd_client
KUBE_WATCH_CACHE=$watch_cache
ENV
  log "ready at $server (kubeconfig: $dir/kubeconfig)"
}

stop_pid() {
  local pidfile="$1"
  [[ -f "$pidfile" ]] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

cmd_stop() {
  local dir="${1:?state directory}"
  # Order matters: the apiserver hangs for a while if etcd goes first.
  stop_pid "$dir/controller-manager.pid"
  stop_pid "$dir/apiserver.pid"
  stop_pid "$dir/etcd.pid"
}

# Start the apiserver of a running cluster again after it was stopped (the fault
# tests kill it to play an outage), on the same port, etcd and credentials, so
# clients holding the old kubeconfig reconnect. Keep the flags in step with cmd_start.
cmd_restart_apiserver() {
  local dir="${1:?state directory}"
  dir=$(cd "$dir" && pwd)
  local pki="$dir/pki"
  stop_pid "$dir/apiserver.pid"
  local etcd_pid etcd_url server api_port token
  etcd_pid=$(cat "$dir/etcd.pid")
  etcd_url=$(tr '\0' '\n' < "/proc/$etcd_pid/cmdline" | grep -A1 -x -- "--listen-client-urls" | tail -1)
  server=$(awk '/server:/{print $2; exit}' "$dir/kubeconfig")
  api_port="${server##*:}"
  token=$(cut -d, -f1 "$pki/tokens.csv")
  local watch_cache
  watch_cache=$(awk -F= '/^KUBE_WATCH_CACHE=/{print $2}' "$dir/env")

  run_apiserver "$dir" "$etcd_url" "$api_port" "${watch_cache:-true}"
  echo $! > "$dir/apiserver.pid"

  for _ in $(seq 1 120); do
    if curl -fsS --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" "$server/readyz" >/dev/null 2>&1; then
      log "apiserver back at $server"
      return 0
    fi
    sleep 0.25
  done
  log "apiserver did not become ready again; last log lines:"
  tail -30 "$dir/logs/apiserver.log" >&2
  exit 1
}

case "${1:-}" in
  install) cmd_install ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  restart-apiserver) shift; cmd_restart_apiserver "$@" ;;
  *) echo "usage: $0 install | start DIR | stop DIR | restart-apiserver DIR" >&2; exit 2 ;;
esac
