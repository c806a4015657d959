#!/usr/bin/env bash
# Instructions per event, simulator delivery vs raw SimPy callback timeout, counted by
# valgrind's callgrind: deterministic, unlike wall-clock rates on a shared VM.
# Each side runs twice (N1 and N2 events); the difference cancels start-up. N2 is the wall-clock
# benchmark's event count, so the difference covers the same mix: the latency reservoir filling
# (its first 100,000 deliveries) and then replacing samples.
#   bash benchmarks/bench_sim_instructions.sh        (needs: apt-get install valgrind)
set -euo pipefail
cd "$(dirname "$0")"
PY=../.venv/bin/python
N1=20000; N2=300000
run() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$PY" - "$1" "$2" 2>&1 <<'PYEOF' | sed -n 's/.*Collected : //p'
import sys
import bench_sim_messages as b
b.EVENTS = int(sys.argv[2])
b.raw_simpy_rate() if sys.argv[1] == "raw" else b.sim_rate(trace=True)
PYEOF
}
raw=$(( ($(run raw $N2) - $(run raw $N1)) / (N2 - N1) ))
ours=$(( ($(run ours $N2) - $(run ours $N1)) / (N2 - N1) ))
echo "instructions per event: raw SimPy callback timeout (baseline) $raw, NovaCron delivery (trace on) $ours"
python3 -c "print(f'rate ratio by instruction count: {$raw / $ours:.3f}  (target >= 0.5)')"
