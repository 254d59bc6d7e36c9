# Sourced by the experiment scripts beside it, after they set `base` (arguments every run
# shares) and `P` (run name -> its own arguments): trains each named run (all when none is
# named) into OUT_DIR/NAME with `npdpsnn train`, skipping runs whose summary.json exists.
# Arguments: OUT_DIR [NAME ...]
out=${1:?out dir}; shift
names=("$@"); [ ${#names[@]} -eq 0 ] && names=("${!P[@]}")
for n in "${names[@]}"; do
  [ -f "$out/$n/summary.json" ] && continue
  # shellcheck disable=SC2086
  npdpsnn train "${base[@]}" ${P[$n]} --out "$out/$n"
done
