"""The cyclic garbage collector around a command's start-up and exit.

A training run imports about 460,000 objects that live as long as the process (Hydra, torch,
Lightning, matplotlib). Every full collection scans all of them: during start-up that cost
0.7 s of a default run, and the interpreter's own collections at exit another 0.8 s. So a
command pauses the collector while it imports (:func:`pause`); once the heavy imports are done
(a training run's backend modules, the model that ``mnistfw-eval`` or ``mnistfw-predict``
loads) :func:`settle` freezes what exists (``gc.freeze``: never scanned again) and collects
young objects as usual from then on; :func:`freeze_for_exit` does the same before the
interpreter tears down. Library callers never pause, so :func:`settle` leaves their collector
alone.
"""

from __future__ import annotations

import gc


def pause() -> None:
    """No collections while a command imports its modules and composes its config."""
    gc.disable()


def settle() -> None:
    """End a :func:`pause`: freeze the objects start-up created and collect as usual from here on.

    Does nothing when the collector is running (a library caller, a later run in the same process),
    so objects of earlier runs are never frozen.
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def freeze_for_exit() -> None:
    """At the end of a command: the interpreter's final collections skip every object alive now."""
    gc.freeze()
