#!/usr/bin/env bash
# Headless PulseAudio for the device-tier tests (DESIGN.md, "Headless audio devices").
#
#   eval "$(scripts/headless-audio.sh start)"   # start (or reuse) it; export the client env
#   scripts/headless-audio.sh env               # print the client env without starting
#   scripts/headless-audio.sh stop              # stop it (silent when none runs)
#
# Devices (null sinks; each has a ".monitor" source that records what is played into it):
#   spk   the app's speaker (default sink); record the assistant with: parecord -d spk.monitor
#   mic   speech is played into it (paplay -d mic); mic.monitor is the app's microphone
#         (default source)
#   echo  for echo tests: route both the app's output and the speech file into it
#         (e.g. PULSE_SINK=echo for the app, paplay -d echo for the speech) and use
#         echo.monitor as the microphone (PULSE_SOURCE=echo.monitor)
#
# Everything lives in a private directory (${VOICECHAT_PULSE_DIR:-/tmp/voicechat-pulse-$UID}):
# runtime dir, socket, pid file, state, cookie, client.conf and the daemon log. The daemon gets
# a private HOME/XDG_CONFIG_HOME and an unreachable D-Bus address, and clients get a private
# cookie and a client.conf with autospawn off, so a user's real PulseAudio/PipeWire and their
# ~/.config are never touched. Works as root (only a warning in the log; no --system needed).
#
# Audio travels over the socket, not shared memory (--disable-shm, enable-shm = no): when one
# client's memfd block is passed on to another (a relay's output to a monitor's recorder),
# PulseAudio 16 logs "non-registered memfd ID" and, once such a client disconnects, can abort on
# an assertion in memblock.c. The daemon dying mid-session failed every device test after it.
#
# VOICECHAT_PULSE_KEEPALIVE=1 makes streams start at once instead of ~1-2 s late (see
# ensure_devices). VOICECHAT_PULSE_START_TIMEOUT (default 10 s) bounds the wait for the daemon.
#
# Note: ALSA's pulse plugin decides at PortAudio initialisation whether "pulse"/"default" exist
# (its hook checks that a server is reachable), so start this before importing sounddevice, or
# re-initialise PortAudio afterwards.
set -euo pipefail

DIR="${VOICECHAT_PULSE_DIR:-/tmp/voicechat-pulse-${UID:-$(id -u)}}"
RUNTIME="$DIR/pulse"              # PULSE_RUNTIME_PATH: socket "native" and "pid" live here
SOCKET="$RUNTIME/native"
PIDFILE="$RUNTIME/pid"
COOKIE="$DIR/config/pulse/cookie" # the daemon creates it under its XDG_CONFIG_HOME
CLIENTCONF="$DIR/client.conf"
LOG="$DIR/pulseaudio.log"
START_TIMEOUT="${VOICECHAT_PULSE_START_TIMEOUT:-10}"
SINKS=(spk mic echo)

die() { echo "headless-audio: $*" >&2; exit 1; }

# Client environment, used by this script's own pactl calls and printed by start/env.
client_env() {
    export XDG_RUNTIME_DIR="$DIR"
    export PULSE_RUNTIME_PATH="$RUNTIME"
    export PULSE_SERVER="unix:$SOCKET"
    export PULSE_COOKIE="$COOKIE"
    export PULSE_CLIENTCONFIG="$CLIENTCONF"
    export VOICECHAT_PULSE_DIR="$DIR"
}

print_env() {
    local v
    for v in XDG_RUNTIME_DIR PULSE_RUNTIME_PATH PULSE_SERVER PULSE_COOKIE PULSE_CLIENTCONFIG \
        VOICECHAT_PULSE_DIR; do
        printf 'export %s=%q\n' "$v" "${!v}"
    done
}

# The daemon's pid when it is alive (not a zombie), else nothing.
daemon_pid() {
    local pid state
    [[ -r "$PIDFILE" ]] || return 1
    read -r pid < "$PIDFILE" 2>/dev/null || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/comm" && "$(< "/proc/$pid/comm")" == pulseaudio ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ "$state" != Z ]] || return 1
    echo "$pid"
}

server_up() { pactl info >/dev/null 2>&1; }

prepare_dir() {
    umask 077
    mkdir -p "$DIR"
    [[ -O "$DIR" ]] || die "$DIR is not owned by $(id -un); set VOICECHAT_PULSE_DIR"
    chmod 700 "$DIR"
    mkdir -p "$RUNTIME" "$DIR/state" "$DIR/config/pulse" "$DIR/home"
    printf 'autospawn = no\ndefault-server = unix:%s\ncookie-file = %s\nenable-shm = no\n' \
        "$SOCKET" "$COOKIE" > "$CLIENTCONF"
}

launch() {
    # PULSE_* client variables from the caller's environment must not leak into the daemon.
    env -u DISPLAY -u PULSE_SERVER -u PULSE_SINK -u PULSE_SOURCE -u PULSE_COOKIE \
        -u PULSE_CLIENTCONFIG -u PULSE_CONFIG -u PULSE_SCRIPT \
        HOME="$DIR/home" \
        XDG_RUNTIME_DIR="$DIR" \
        XDG_CONFIG_HOME="$DIR/config" \
        PULSE_CONFIG_PATH="$DIR/config/pulse" \
        PULSE_RUNTIME_PATH="$RUNTIME" \
        PULSE_STATE_PATH="$DIR/state" \
        DBUS_SESSION_BUS_ADDRESS="unix:path=$DIR/no-dbus" \
        pulseaudio --daemonize=yes --fail=yes -n \
            --exit-idle-time=-1 \
            --disable-shm=yes \
            --use-pid-file=yes \
            --log-target="file:$LOG" \
            --load="module-native-protocol-unix socket=$SOCKET auth-anonymous=1" \
            --load="module-null-sink sink_name=spk sink_properties=device.description=voicechat-speaker" \
            --load="module-null-sink sink_name=mic sink_properties=device.description=voicechat-mic" \
            --load="module-null-sink sink_name=echo sink_properties=device.description=voicechat-echo" \
        </dev/null >/dev/null 2>"$DIR/pulseaudio.stderr" 9>&-  # the daemon must not hold the lock
}

ensure_devices() {
    local sinks s
    sinks=$(pactl list short sinks 2>/dev/null | awk '{print $2}')
    for s in "${SINKS[@]}"; do
        if ! grep -qx "$s" <<<"$sinks"; then
            pactl load-module module-null-sink "sink_name=$s" \
                "sink_properties=device.description=voicechat-$s" >/dev/null
        fi
    done
    if [[ "${VOICECHAT_PULSE_KEEPALIVE:-0}" == 1 ]] && ! grep -qx keepalive <<<"$sinks"; then
        # An idle null sink renders in blocks of up to 2 s, so a stream opened on it gets its
        # first input callback ~1-2 s late and plays slowly for the first ~2 s. A low-latency
        # reader on every monitor keeps the sinks ticking finely: first callbacks then come
        # after ~20 ms. Costs ~2 % of a core in the daemon, hence opt-in.
        pactl load-module module-null-sink sink_name=keepalive \
            sink_properties=device.description=voicechat-keepalive >/dev/null
        for s in "${SINKS[@]}"; do
            pactl load-module module-loopback "source=$s.monitor" sink=keepalive \
                latency_msec=60 source_dont_move=true sink_dont_move=true >/dev/null
        done
    fi
    pactl set-default-sink spk
    pactl set-default-source mic.monitor
}

cmd_start() {
    if ! command -v pulseaudio >/dev/null || ! command -v pactl >/dev/null; then
        die "pulseaudio/pactl not installed (run scripts/sysdeps.sh)"
    fi
    prepare_dir
    client_env
    # One starter at a time (parallel test workers may all call start).
    exec 9>"$DIR/lock"
    flock -w $((START_TIMEOUT + 5)) 9 || die "timed out waiting for $DIR/lock"

    if ! server_up; then
        if ! daemon_pid >/dev/null; then
            # Leftovers of a killed daemon; a stale pid file naming a not-yet-reaped zombie
            # would make pulseaudio refuse with "Daemon already running".
            rm -f "$SOCKET" "$PIDFILE"
            launch || { tail -n 20 "$LOG" "$DIR/pulseaudio.stderr" >&2 || true; die "pulseaudio failed to start (log: $LOG)"; }
        fi
        local deadline=$((SECONDS + START_TIMEOUT))
        until server_up; do
            if ((SECONDS >= deadline)); then
                tail -n 20 "$LOG" >&2 || true
                die "pulseaudio did not answer within ${START_TIMEOUT}s (log: $LOG)"
            fi
            sleep 0.1
        done
    fi
    ensure_devices
    print_env
}

cmd_stop() {
    local pid i
    pid=$(daemon_pid) || return 0
    client_env
    pactl exit >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        daemon_pid >/dev/null || return 0
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    sleep 0.5
    if daemon_pid >/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    return 0
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) client_env; print_env ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
