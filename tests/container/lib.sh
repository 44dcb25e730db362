# Shared by the container tests (run.sh, swarm3.sh): counted checks,
# timings and the closing summary. Source it after setting `tag` (what
# each line starts with: [tag]); it starts the counters and the clock.
#   check NAME COMMAND...   one counted result: "ok   NAME" or "FAIL NAME"
#   t=$(now) ... timings+=("what: $(since "$t")s")
#   summary NAME            timings, what failed, "NAME: N passed, N failed";
#                           returns 0 when nothing failed
pass=0
fail=0
failed=()
timings=()
t_all=$(date +%s)

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "[$tag] $*"; }
check() {
  local name=$1
  shift
  if "$@"; then
    pass=$((pass + 1))
    say "ok   $name"
  else
    fail=$((fail + 1))
    failed+=("$name")
    say "FAIL $name"
  fi
}
summary() {
  echo
  say "timings:"
  local x
  for x in "${timings[@]}"; do say "  $x"; done
  say "  total: $(($(date +%s) - t_all))s"
  ((fail)) && say "failed: ${failed[*]}"
  echo "$1: $pass passed, $fail failed"
  ((fail == 0))
}
