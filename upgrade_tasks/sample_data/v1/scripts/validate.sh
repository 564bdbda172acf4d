#!/bin/sh
# Validate a prAxIs OS installation: required directories exist.
set -eu
base="${1:-.praxis-os}"
for d in standards workflows mcp_server scripts; do
    if [ ! -d "$base/$d" ]; then
        echo "missing: $base/$d" >&2
        exit 1
    fi
done
echo "ok: $base"
