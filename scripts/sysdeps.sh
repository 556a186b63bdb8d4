#!/usr/bin/env bash
# Install the Debian packages the test suite needs (PortAudio, a headless PulseAudio with the
# ALSA pulse plugin, espeak-ng + sox for test speech, tmux for terminal tests).
# Silent when everything is installed. As root with apt-get, installs what is missing; otherwise
# says what is missing and how to install it, and exits 0: the device-tier tests skip themselves.
# --no-install-recommends is enough: the recommends (rtkit, VA/VDPAU drivers, GStreamer plugins)
# are not used by the `pulseaudio -n` null-sink daemon of scripts/headless-audio.sh.
set -euo pipefail

PACKAGES=(libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins espeak-ng sox tmux)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "sysdeps: installing ${missing[*]}" >&2
    apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" </dev/null
    exit 0
fi

for pkg in "${missing[@]}"; do
    echo "sysdeps: $pkg is not installed; the device-tier tests will be skipped" \
        "(install: sudo apt-get install --no-install-recommends ${missing[*]})" >&2
done
exit 0
