"""Stopping a training run cleanly: Ctrl-C (SIGINT) or SIGTERM asks the run to stop at the end
of its current chunk of samples, save its checkpoint and raise Interrupted; a second signal
stops at once (KeyboardInterrupt), and Interrupted then says what was saved."""
import signal
import threading

SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
EXIT_CODES = {"Ctrl-C": 130, "SIGTERM": 143}  # 128 + the signal's number, as shells report it


class Interrupted(Exception):
    """Training stopped by Ctrl-C or SIGTERM; the message says what was saved."""

    def __init__(self, message, by="Ctrl-C"):
        super().__init__(message)
        self.by = by  # what stopped it: "Ctrl-C" or "SIGTERM"

    @property
    def exit_code(self):
        return EXIT_CODES.get(self.by, 130)


class StopRequest:
    """Whether the run has been asked to stop (`requested`: the signal's name, or None).
    As a context manager it listens for SIGINT and SIGTERM (main thread only: signals reach
    no other), and puts the previous handlers back on exit."""

    def __init__(self):
        self.requested = None
        self._previous = {}

    def request(self, by="Ctrl-C"):
        """Stop at the end of the current chunk (what the first signal does)."""
        self.requested = by

    def _on_signal(self, signum, frame):
        if self.requested:  # the second signal: stop now
            raise KeyboardInterrupt
        self.request(SIGNAL_NAMES[signum])

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._on_signal) for s in SIGNAL_NAMES}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
