#!/bin/sh
# Runs fuzz targets one after another at the lowest CPU priority.
# Usage: fuzz/run.sh SECONDS [TARGET...]   (all targets when none named)
# Corpora grow in fuzz/corpus/<target> (seeded from fuzz/seeds/<target>);
# crashing inputs land in fuzz/artifacts/<target>/.
set -eu
cd "$(dirname "$0")"
secs=${1:?seconds per target}
shift
targets=${*:-$(RUSTC_BOOTSTRAP=1 cargo fuzz list)}
export RUSTC_BOOTSTRAP=1
nice -n 19 cargo fuzz build -s none -a
for t in $targets; do
    mkdir -p "corpus/$t"
    echo "== $t"
    nice -n 19 cargo fuzz run -s none -a "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=512 -malloc_limit_mb=512 \
        -timeout=10 -max_len=65536 -print_final_stats=1 2>&1 |
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==|INFO: -max_total_time|.*(panicked|ERROR|SUMMARY|Test unit written|out-of-memory|timeout))' || true
done
