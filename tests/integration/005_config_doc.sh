#!/usr/bin/env bash
# docs/configuration.md is what tools/gen-config-doc.sh makes from this
# build's programs. It is made again into a temporary file and compared with
# the committed one, so a setting added, renamed, given another default or
# described differently without `make config-doc` fails here, showing the
# difference. Needs no store: only each program's --help.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

bash "$HF_ROOT/tools/gen-config-doc.sh" "$BUILD" "$HF_RUN/configuration.md"
if ! diff -u "$HF_ROOT/docs/configuration.md" "$HF_RUN/configuration.md"; then
    echo "FAIL: docs/configuration.md differs from the programs' settings (above: - committed," \
        "+ built); run make config-doc and commit the result" >&2
    exit 1
fi
echo "PASS: docs/configuration.md matches the settings of every program"
