#!/usr/bin/env bash
# Regenerates voicechat/data/question.wav, the demo's bundled spoken question:
#   espeak-ng -v en-us -w "$tmp" "Hello, what is the weather like today?"
#   sox -R "$tmp" -r 16000 -c 1 -b 16 -e signed-integer voicechat/data/question.wav
# (espeak-ng writes 22.05 kHz mono; sox converts it to 16 kHz mono 16-bit PCM; -R seeds the
# dither so the output is byte-for-byte repeatable.)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp --suffix=.wav)
trap 'rm -f "$tmp"' EXIT
espeak-ng -v en-us -w "$tmp" "Hello, what is the weather like today?"
sox -R "$tmp" -r 16000 -c 1 -b 16 -e signed-integer voicechat/data/question.wav
