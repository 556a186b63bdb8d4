"""voicechat: live, interruptible voice conversations with realtime speech models, in a terminal.

This module holds the version only; importing it has no side effects.
"""

__version__ = "0.1.0"
