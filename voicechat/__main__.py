"""``python -m voicechat``."""

from voicechat.cli import main

main()
