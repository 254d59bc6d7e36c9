#!/usr/bin/env bash
# Issue 15, step 2: whole runs at the paper's privacy budget (epsilon 3.04 by RDP,
# delta 1e-5; sigma calibrated by --target-epsilon), MNIST, Net2 SNN, seed 0,
# 5,000 training images held out for validation (selection uses validation_accuracy).
# Usage: bash docs/results/accuracy/recipes.sh OUT_DIR [NAME ...]
set -euo pipefail
base=(mnist --target-epsilon 3.04 --validation 5000 --seed 0 --quiet)
declare -A P=(
  [b250-e60-mom]="--batch-size 250 --epochs 60 --lr 0.05 --momentum 0.9 --ema 0.999"
  [b1000-e20-mom]="--batch-size 1000 --epochs 20 --lr 0.1 --momentum 0.9 --ema 0.995"
  [b2000-e20-mom]="--batch-size 2000 --epochs 20 --lr 0.2 --momentum 0.9 --ema 0.99"
  [b1000-e20-mom-lr0.2]="--batch-size 1000 --epochs 20 --lr 0.2 --momentum 0.9 --ema 0.995"
  [b1000-e40-mom]="--batch-size 1000 --epochs 40 --lr 0.1 --momentum 0.9 --ema 0.995"
  [b2000-e40-mom]="--batch-size 2000 --epochs 40 --lr 0.2 --momentum 0.9 --ema 0.995"
  [tb-b512-e40]="--batch-size 512 --epochs 40 --clip 0.1 --lr 0.5 --momentum 0.9 --ema 0.999"
  [b1000-e20-mom-cos]="--batch-size 1000 --epochs 20 --lr 0.2 --momentum 0.9 --lr-schedule cosine --ema 0.995"
)
source "$(dirname "$0")/run_named.sh"
