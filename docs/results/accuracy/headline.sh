#!/usr/bin/env bash
# Issue 15, step 3: the recipe chosen on the validation split (recipes.sh b1000-e20-mom),
# trained on the full training sets and scored on the test sets: MNIST at epsilon <= 3.04
# and Fashion-MNIST at epsilon <= 2.3 (RDP, delta 1e-5; sigma calibrated by
# --target-epsilon), Net2 SNN over 3 seeds and the ANN-tanh under the same recipe;
# one DP epoch of MNIST at sigma = 1.0.
# Usage: bash docs/results/accuracy/headline.sh OUT_DIR [NAME ...]
set -euo pipefail
# --preset tuned: batch 1000, 20 epochs, lr 0.1, momentum 0.9, constant rate, EMA 0.995
recipe="--preset tuned --quiet"
# the best whole-run recipe on validation (recipes.sh tb-b512-e40: Tramer & Boneh's settings)
tb="--batch-size 512 --epochs 40 --clip 0.1 --lr 0.5 --momentum 0.9 --ema 0.999 --quiet"
base=()
declare -A P=(
  [mnist-snn-s0]="mnist --target-epsilon 3.04 $recipe --seed 0"
  [mnist-snn-s1]="mnist --target-epsilon 3.04 $recipe --seed 1"
  [mnist-snn-s2]="mnist --target-epsilon 3.04 $recipe --seed 2"
  [mnist-ann-s0]="mnist --target-epsilon 3.04 $recipe --seed 0 --model ann"
  [fashion-snn-s0]="fashion-mnist --target-epsilon 2.3 $recipe --seed 0"
  [fashion-snn-s1]="fashion-mnist --target-epsilon 2.3 $recipe --seed 1"
  [fashion-snn-s2]="fashion-mnist --target-epsilon 2.3 $recipe --seed 2"
  [fashion-ann-s0]="fashion-mnist --target-epsilon 2.3 $recipe --seed 0 --model ann"
  [mnist-snn-tb-s0]="mnist --target-epsilon 3.04 $tb --seed 0"
  [mnist-snn-tb-s1]="mnist --target-epsilon 3.04 $tb --seed 1"
  [mnist-snn-tb-s2]="mnist --target-epsilon 3.04 $tb --seed 2"
  [mnist-ann-tb-s0]="mnist --target-epsilon 3.04 $tb --seed 0 --model ann"
  [mnist-snn-1epoch-paper]="mnist --sigma 1.0 --epochs 1 --quiet"
  [mnist-snn-1epoch-mom]="mnist --sigma 1.0 --epochs 1 --lr 0.05 --momentum 0.9 --quiet"
  [mnist-ann-1epoch-paper]="mnist --sigma 1.0 --epochs 1 --model ann --quiet"
)
source "$(dirname "$0")/run_named.sh"
