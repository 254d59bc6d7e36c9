#!/usr/bin/env bash
# Issue 15, step 5: Extended Yale B (Cropped, 38 subjects, 2,414 images, 32x32; the
# seeded 80/20 split gives 1,924 training and 490 test images), face net, seed 0,
# 300 training images held out for validation.  DP runs: epsilon <= 3 (RDP, delta 1e-5),
# sigma calibrated by --target-epsilon.
# Usage: bash docs/results/accuracy/yaleb.sh OUT_DIR [NAME ...]
set -euo pipefail
# a small face net (18,600 weights against the face net's 116,000): less noise per weight at equal sigma
small=8C5S1-P2S2-16C5S1-P2S2-38
base=(yaleb --validation 300 --seed 0 --quiet)
declare -A P=(
  [nodp-paper]="--no-dp"
  [nodp-mom]="--no-dp --lr 0.05 --momentum 0.9"
  [nodp-mom-e160]="--no-dp --lr 0.05 --momentum 0.9 --epochs 160"
  [dp-b256-e80]="--target-epsilon 3 --batch-size 256 --epochs 80 --lr 0.05 --momentum 0.9"
  [dp-b512-e20]="--target-epsilon 3 --batch-size 512 --epochs 20 --lr 0.1 --momentum 0.9"
  [dp-b512-e40]="--target-epsilon 3 --batch-size 512 --epochs 40 --lr 0.1 --momentum 0.9"
  [dp-b512-e80]="--target-epsilon 3 --batch-size 512 --epochs 80 --lr 0.1 --momentum 0.9"
  [nodp-small-mom-e160]="--no-dp --net $small --lr 0.05 --momentum 0.9 --epochs 160"
  [dp-small-b256-e80]="--target-epsilon 3 --net $small --batch-size 256 --epochs 80 --lr 0.05 --momentum 0.9"
  [dp-small-b512-e80]="--target-epsilon 3 --net $small --batch-size 512 --epochs 80 --lr 0.1 --momentum 0.9"
  [dp-small-b256-e80-lr0.01]="--target-epsilon 3 --net $small --batch-size 256 --epochs 80 --lr 0.01 --momentum 0.9"
  [dp-small-b256-e80-lr0.002]="--target-epsilon 3 --net $small --batch-size 256 --epochs 80 --lr 0.002 --momentum 0.9"
  [dp-small-b256-e80-lr0.005]="--target-epsilon 3 --net $small --batch-size 256 --epochs 80 --lr 0.005 --momentum 0.9"
  [dp-small-b256-e160-lr0.01]="--target-epsilon 3 --net $small --batch-size 256 --epochs 160 --lr 0.01 --momentum 0.9"
  [dp-small-b512-e80-lr0.02]="--target-epsilon 3 --net $small --batch-size 512 --epochs 80 --lr 0.02 --momentum 0.9"
  [dp-b1024-e80]="--target-epsilon 3 --batch-size 1024 --epochs 80 --lr 0.2 --momentum 0.9"
)
source "$(dirname "$0")/run_named.sh"
