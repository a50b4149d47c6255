#!/usr/bin/env bash
# Installs the Debian 12 packages netbird-mgmt builds, runs and tests with. Idempotent.
set -euo pipefail
pkgs=(meson ninja-build pkg-config g++ python3
  libcaf-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libsoci-dev libboost-dev libpq-dev libsqlite3-dev sqlite3 postgresql
  libyaml-cpp-dev doctest-dev libsodium-dev libcpp-httplib-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libcli11-dev prometheus-cpp-dev libmaxminddb-dev libcurl4-openssl-dev libssl-dev
  libreadline-dev libnghttp2-dev)
# prometheus-cpp-dev: only its core library is linked (the metrics registry and text format);
# /metrics is served by our own listener, not by its civetweb-based Exposer (no IPv6 in Debian's).
# libreadline-dev: `netbird-mgmt inspect`'s console (line editing, history, completion). GNU
# readline rather than libedit: its completion API (rl_completion_matches, the attempted-completion
# hook) is the one both document, Debian 12 builds bash against it (libreadline8 is on every
# system already), and libedit's readline emulation differs in completion details.
# With --test, also what the sanitizer and fuzzing build of scripts/test.sh needs
# (scripts/sanitize.sh): clang with its sanitizer and libFuzzer runtimes, without the recommended
# LLVM development packages. Running the server needs none of it.
san_pkgs=()
# pebble (with pebble-challtestsrv): the private ACME CA the Let's Encrypt tests issue from.
# tmux: the inspector console's e2e test drives it as a person would (send-keys, capture-pane).
# golang-go, golang-google-grpc-dev: gRPC's Go client (NetBird's agents are Go) in tests/e2e/run.sh.
[ "${1:-}" = --test ] && san_pkgs=(clang libclang-rt-14-dev pebble tmux golang-go golang-google-grpc-dev)
missing=(); san_missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for p in "${san_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || san_missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && [ ${#san_missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# apt's own progress stays visible: a first install downloads a few hundred MB.
echo "install-deps: installing ${missing[*]} ${san_missing[*]}"
$SUDO apt-get update
[ ${#missing[@]} -eq 0 ] ||
  $SUDO apt-get install -y -o DPkg::Lock::Timeout=600 "${missing[@]}"
[ ${#san_missing[@]} -eq 0 ] ||
  $SUDO apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 \
    "${san_missing[@]}"
