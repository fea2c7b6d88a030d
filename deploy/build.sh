#!/usr/bin/env bash
# The one release build of IndexPilot: the container image's builder stage
# runs this script, and so does .ci/run, so the image never contains a binary
# built in a way CI has not proved. Usage: deploy/build.sh OUT_DIR
# (the binary is installed as OUT_DIR/indexpilot).
set -euo pipefail
out=${1:?usage: deploy/build.sh OUT_DIR}
cd "$(dirname "$0")/.."

cargo build --release --locked --bin indexpilot
mkdir -p "$out"
install -m 0755 target/release/indexpilot "$out/indexpilot"
"$out/indexpilot" --version
