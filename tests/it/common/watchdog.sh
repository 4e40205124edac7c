#!/usr/bin/env bash
# ticketgate test harness: keeps a test's servers from outliving the test process.
#
#   watchdog.sh OWNER_PID -- CMD...         runs CMD; stops it (TERM, then waits) when this script
#                                           gets TERM/INT or when process OWNER_PID is gone
#   watchdog.sh OWNER_PID --on-exit CMD...  runs CMD once, when OWNER_PID is gone or on TERM/INT
#
# Drop in the Rust harness stops servers in the normal case; this covers a test process that
# was killed (timeout, SIGKILL), where no destructor runs.
owner=$1 mode=$2
shift 2
alive() { kill -0 "$owner" 2>/dev/null; }
if [ "$mode" = "--" ]; then
    "$@" &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM INT
    while alive && kill -0 "$child" 2>/dev/null; do
        sleep 0.5 &
        wait $!
    done
    kill -TERM "$child" 2>/dev/null
    wait "$child"
else
    trap '"$@"; exit 0' TERM INT
    while alive; do
        sleep 0.5 &
        wait $!
    done
    "$@"
fi
