#!/bin/bash
# Idle cost of a running gpupassd: wakeups over SECONDS with nothing happening, counted from the context
# switches of all its threads in /proc (every wakeup ends in a voluntary switch when the thread sleeps
# again), and its memory: RSS, and from smaps where it goes (per mapping, largest first).
# Usage: idle-agent.sh PID SECONDS. Run by bench-agent.sh idle.
set -euo pipefail
pid=$1 seconds=$2

switches() { # voluntary nonvoluntary, summed over the threads
        local v=0 n=0 t a b
        for t in /proc/"$pid"/task/*; do
                a=$(awk '/^voluntary_ctxt_switches/ {print $2}' "$t/status" 2>/dev/null || echo 0)
                b=$(awk '/^nonvoluntary_ctxt_switches/ {print $2}' "$t/status" 2>/dev/null || echo 0)
                v=$((v + a)) n=$((n + b))
        done
        echo "$v $n"
}

sleep 1 # let start-up settle (the name request and the first property reads)
read -r v0 n0 < <(switches)
threads=$(ls /proc/"$pid"/task | wc -l)
sleep "$seconds"
read -r v1 n1 < <(switches)
echo "gpupassd idle for $seconds s ($threads thread(s), watchdog ${WATCHDOG_USEC:-not set}):"
echo "  wakeups: $((v1 - v0)) voluntary + $((n1 - n0)) involuntary context switches   (target 0 besides the watchdog)"
awk '/^(VmRSS|RssAnon|RssFile|RssShmem|VmHWM)/ {printf "  %-9s %6d KiB\n", $1, $2}' /proc/"$pid"/status
awk '/^(Pss|Pss_Anon|Pss_File):/ {printf "  %-9s %6d KiB\n", $1, $2}' /proc/"$pid"/smaps_rollup
echo "  where the RSS goes (smaps, KiB per mapping, largest first; Pss: its share of pages other processes"
echo "  map too; Private_Dirty: pages only it has, written: relocations, .data, heap, stacks):"
printf "%8s %8s %8s  %s\n" Rss Pss PrivDirty mapping
awk '/^[0-9a-f]+-[0-9a-f]+ / {name = (NF >= 6 ? $6 : "[anon]")} /^Rss:/ {rss[name] += $2} /^Pss:/ {pss[name] += $2}
     /^Private_Dirty:/ {pd[name] += $2}
     END {for (n in rss) if (rss[n] > 0) printf "%8d %8d %8d  %s\n", rss[n], pss[n], pd[n], n}' /proc/"$pid"/smaps | sort -rn | head -16
awk '/^[0-9a-f]+-[0-9a-f]+ / {name = (NF >= 6 ? $6 : "")} /^Rss:/ {if (name ~ /umockdev|simkernel|glib|gobject|gio|gmodule|ffi|pcre|mount|blkid|selinux/) t += $2}
     END {printf "  of which the test-only preload (umockdev, simkernel shim, GLib and what they pull in): %d KiB\n", t}' /proc/"$pid"/smaps
