#!/bin/sh
# A nightly data pipeline in eight jobs, submitted all at once; the conditions order them.
#
#   fetch ──> transform.1 ┐
#         ──> transform.2 ├─ ended(transform.*) ──> validate ── exit(validate, > 2) ──> repair
#         ──> transform.3 ┘                             │                                  │
#                                     done(validate) || done(repair) ──> publish <─────────┘
#                     exit(validate, <= 2) || exit(repair) ──> alert   (-ti: dropped if never needed)
#
# transform.3 fails on purpose, so validate finds a part missing and exits 3; repair rebuilds
# it and publish runs after repair. alert can then never run, and -ti terminates it.
# Run from the directory the jobs should work in, with a daemon on the same database.
set -eu
tock=${TOCK:-tock}

$tock submit -J fetch -- 'sleep 0.4; seq 1 30 > data.txt'
for part in 1 2 3; do
    $tock submit -J "transform.$part" -w 'done(fetch)' -- \
        "sleep 0.3; [ $part -ne 3 ] || exit 1; awk 'NR % 3 == $part - 1' data.txt > part.$part"
done
$tock submit -J validate -w 'ended(transform.*)' -- \
    'sleep 0.2; for p in 1 2 3; do [ -s part.$p ] || exit 3; done'
$tock submit -J repair -ti -w 'exit(validate, > 2)' -- \
    "sleep 0.3; awk 'NR % 3 == 2' data.txt > part.3"
$tock submit -J publish -ti -w 'done(validate) || done(repair)' -- \
    'sleep 0.2; cat part.1 part.2 part.3 | sort -n > published.txt'
$tock submit -J alert -ti -w 'exit(validate, <= 2) || exit(repair)' -- \
    'echo "pipeline failed" >&2; exit 1'
