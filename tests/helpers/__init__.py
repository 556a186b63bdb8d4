"""Helpers shared by the test tiers (imported as ``tests.helpers.<name>``).

* ``server``: the local server and a raw websockets client on loopback; test speech.
* ``cli``: ``voicechat`` as a subprocess with a clean environment (the one runner).
* ``canary``: fake secrets and every encoded form of them (the leak sweep).
* ``hostile``: servers of our own that misbehave on purpose.
* ``devices``: the headless PulseAudio and what the device tier measures through it.
"""
