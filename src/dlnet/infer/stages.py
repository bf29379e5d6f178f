"""Threads joined by small bounded queues: the film pipeline's plumbing (dlnet.infer.video).

A :class:`Stage` runs one step of a pipeline in a thread; :class:`Pipe` hands items between two
stages and holds at most ``size`` of them, so memory does not grow with the input's length. One
``threading.Event`` stops the whole run: set by a stage that fails (its error kept for the main
thread to raise) or by the main thread (Ctrl-C); every blocked ``put``/``get`` then raises
:class:`Stopped` within 0.1 s and the stages leave quietly.

Example:
    >>> import threading
    >>> stop = threading.Event()
    >>> pipe = Pipe(stop, size=2)
    >>> producer = Stage(lambda: [pipe.put(i) for i in (1, 2, None)], stop)
    >>> producer.start()
    >>> [pipe.get(), pipe.get(), pipe.get()]
    [1, 2, None]
    >>> producer.join(); producer.error is None
    True
"""

from __future__ import annotations

import contextlib
import queue
import threading

__all__ = ["Pipe", "Stage", "Stopped"]


class Stopped(Exception):
    """The run was stopped (an error elsewhere, or Ctrl-C): a stage leaves quietly."""


class Pipe:
    """A bounded queue between two stages that gives up once the run is stopped."""

    def __init__(self, stop: threading.Event, size: int = 8) -> None:
        self.q, self.stop = queue.Queue(size), stop

    def put(self, item) -> None:
        while not self.stop.is_set():
            try:
                return self.q.put(item, timeout=0.1)
            except queue.Full:
                pass
        raise Stopped

    def get(self):
        while True:
            try:
                return self.q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    raise Stopped from None


class Stage(threading.Thread):
    """Runs ``fn()`` in a daemon thread; an exception is kept in ``error`` and stops the run."""

    def __init__(self, fn, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.fn, self.stop, self.error = fn, stop, None

    def run(self) -> None:
        try:
            with contextlib.suppress(Stopped):
                self.fn()
        except BaseException as e:  # handed to the main thread, which reports it
            self.error = e
            self.stop.set()
