"""A small progress bar on stderr: redrawn in place on a terminal, a line every ~10% otherwise."""
import sys
import time


class Progress:
    def __init__(self, total, desc="", unit="samples", stream=None, enabled=True):
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.tty = self.enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_decile = -1

    def update(self, n, note=""):
        """Advance by n units; `note` (e.g. the running loss) is shown after the rate."""
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.tty:
            if now - self._last_draw >= 0.1 or self.done >= self.total:
                self._last_draw = now
                self.stream.write("\r" + self._line(now, note))
                self.stream.flush()
        else:
            decile = int(10 * self.done / self.total)
            if decile > self._last_decile:
                self._last_decile = decile
                self.stream.write(self._line(now, note) + "\n")
                self.stream.flush()

    def rate(self):
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def _line(self, now, note):
        frac = min(1.0, self.done / self.total)
        width = 24
        filled = int(frac * width)
        bar = "#" * filled + "." * (width - filled)
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        text = (f"{self.desc} [{bar}] {self.done:,}/{self.total:,} {self.unit} "
                f"{rate:,.0f}/s eta {eta:4.0f}s")
        return f"{text} {note}".rstrip()

    def clear(self):
        """Blank the bar's line (so another line can be printed there); the next update
        redraws it."""
        if self.enabled and self.tty:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()
            self._last_draw = 0.0

    def close(self):
        self.clear()
