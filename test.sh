#!/usr/bin/env bash
# The README's test command: installs the NAT lab's Debian packages where any is
# missing (lab/install-packages.sh, as root), then runs every test. Extra arguments
# go to cargo test (e.g. `bash test.sh -p natkit-stun`; the default is the whole
# workspace).
set -euo pipefail
cd "$(dirname "$0")"
bash lab/install-packages.sh
if (($# == 0)); then
    set -- --workspace
fi
exec cargo test "$@"
