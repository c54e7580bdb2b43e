#!/usr/bin/env bash
# Installs the Debian 12 packages smelt needs to build, test and run. Idempotent:
# packages already present are skipped, so a second run costs one dpkg query.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git
  clang-14 libclang-rt-14-dev libomp-14-dev lld-14   # sanitizer build and libFuzzer targets
  libopenblas-dev liblapacke-dev        # fp32 GEMM, Cholesky
  nlohmann-json3-dev libcli11-dev libfmt-dev libyaml-cpp-dev
  libcpp-httplib-dev libpcre2-dev libsentencepiece-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenmpi-dev openmpi-bin
  time                                  # peak memory in scripts/bench-load.sh, bench-quant-speed.sh
  jq                                    # JSON in scripts/bench-runtime.sh
  bible-kjv                             # `bible`: the King James Bible, the demo's default corpus
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
