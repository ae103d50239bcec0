#!/usr/bin/env bash
# The AWS side of CI: the Python tools the deployment checks and tests use, then both linters on
# template.yaml. Run before `cargo test` (the IAM token test compares with botocore, the secrets
# test talks to a local moto server).
set -euo pipefail
cd "$(dirname "$0")/.."
export SAM_CLI_TELEMETRY=0

need=()
python3 -c 'import botocore' 2>/dev/null || need+=(botocore)
python3 -c 'import moto.server, flask' 2>/dev/null || need+=("moto[server]")
command -v cfn-lint >/dev/null 2>&1 || need+=(cfn-lint)
command -v sam >/dev/null 2>&1 || need+=(aws-sam-cli)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${need[@]}"
fi

cfn-lint template.yaml
sam validate --lint --template template.yaml
