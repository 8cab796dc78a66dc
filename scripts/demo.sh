#!/usr/bin/env bash
# `make demo`: the README tour on a throw-away vault in a temporary directory.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
mlvault="$here/.venv/bin/mlvault"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

export MLVAULT_PASSPHRASE="demo passphrase (use a real one)"
export MLVAULT_VAULT="$work/vault"
export MLVAULT_CONFIG_DIR="$work/config"       # keys and pins of this demo only
run() { printf '\n$ %s\n' "$*"; "$@"; }

mkdir -p resnet/weights
head -c 12000000 /dev/urandom > resnet/weights/model.safetensors
printf '{"arch": "resnet50"}\n' > resnet/config.json
: > resnet/EMPTY
head -c 3000000 /dev/urandom > data.parquet

run "$mlvault" init "$MLVAULT_VAULT" --kdf-memory-mib 16
run "$mlvault" push ./resnet team/resnet --tag staging --meta framework=torch --kind model
printf '{"arch": "resnet50", "lr": 0.1}\n' > resnet/config.json
run "$mlvault" push ./resnet team/resnet --meta framework=torch
run "$mlvault" push ./data.parquet datasets/imagenet-mini --kind dataset
run "$mlvault" ls
run "$mlvault" log team/resnet
run "$mlvault" show team/resnet@v2
run "$mlvault" tag team/resnet@v2 prod
run "$mlvault" pull team/resnet@prod ./out
run diff -r resnet out
run "$mlvault" pull datasets/imagenet-mini ./data-copy.parquet
run cmp data.parquet data-copy.parquet
run "$mlvault" check --read-data

# Signatures: a release key signs v2, an admin key signs the trust policy, pull enforces it.
run "$mlvault" key new admin --unencrypted
run "$mlvault" key new release-signer --unencrypted
"$mlvault" key export release-signer --public > release.pub
run "$mlvault" sign team/resnet@v2 --key release-signer
run "$mlvault" trust add 'team/*' --key release.pub --admin-key admin
run "$mlvault" verify team/resnet@prod
run "$mlvault" pull team/resnet@prod ./verified
run "$mlvault" signature export team/resnet@v2 -o resnet.sig
printf '\n# on a deploy host: no vault, no credentials\n'
run env -u MLVAULT_VAULT -u MLVAULT_PASSPHRASE "$mlvault" verify ./verified --signature resnet.sig --key release.pub
printf '\ndemo ok\n'
