#!/usr/bin/env bash
# Issue 15, step 1: one factor at a time, 3 epochs of MNIST, Net2 SNN, sigma = 1.0,
# batch 250 (Poisson), seed 0, 5,000 training images held out for validation.
# Usage: bash docs/results/accuracy/probes.sh OUT_DIR [NAME ...]
set -euo pipefail
base=(mnist --sigma 1.0 --epochs 3 --validation 5000 --seed 0 --quiet)
declare -A P=(
  [paper]="--lr 0.25"
  [mom]="--lr 0.05 --momentum 0.9"
  [mom-lr0.1]="--lr 0.1 --momentum 0.9"
  [mom-lr0.025]="--lr 0.025 --momentum 0.9"
  [mom-th1.0]="--lr 0.05 --momentum 0.9 --threshold 1.0"
  [mom-detach]="--lr 0.05 --momentum 0.9 --detach-reset"
  [mom-clip0.5]="--lr 0.15 --momentum 0.9 --clip 0.5"
  [mom-clip4]="--lr 0.01875 --momentum 0.9 --clip 4.0"
  [mom-normalize]="--lr 0.05 --momentum 0.9 --clipping normalize"
  [mom-darctanh]="--lr 0.05 --momentum 0.9 --surrogate darctanh"
  [mom-normal]="--lr 0.05 --momentum 0.9 --surrogate normal"
  [mom-T10]="--lr 0.05 --momentum 0.9 -T 10"
  [mom-lif]="--lr 0.05 --momentum 0.9 --neuron lif"
  [mom-init0.5]="--lr 0.05 --momentum 0.9 --init-gain 0.5"
  [mom-init2]="--lr 0.05 --momentum 0.9 --init-gain 2.0"
  [ann-paper]="--model ann --lr 0.25"
  [ann-mom]="--model ann --lr 0.05 --momentum 0.9"
)
source "$(dirname "$0")/run_named.sh"
