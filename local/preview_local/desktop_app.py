"""The desktop sandbox's visible app: a small Tk window on the X display that logs what it gets.

Run as ``python -m preview_local.desktop_app <log file>`` with ``DISPLAY`` set. It shows a clock
(so the screen changes every half second), the text typed so far and a click counter, and appends
each key press and click to the log file as a JSON line: the sandbox side's own record of which
input reached it, independent of any browser.
"""

from __future__ import annotations

import json
import sys
import time
import tkinter as tk
from pathlib import Path


def main(argv: list[str]) -> int:
    log_path = Path(argv[0])
    log_path.write_text("", encoding="utf-8")
    root = tk.Tk()
    root.title("Desktop sandbox")
    width, height = root.winfo_screenwidth(), root.winfo_screenheight()
    root.geometry(f"{width}x{height}+0+0")
    root.configure(background="#1f2937")
    typed = tk.StringVar(value="")
    clicks = tk.IntVar(value=0)
    tk.Label(root, text="Desktop sandbox", font=("DejaVu Sans", 28, "bold"), fg="white", bg="#1f2937").pack(
        pady=24
    )
    clock = tk.Label(root, font=("DejaVu Sans Mono", 40), fg="#fbbf24", bg="#1f2937")
    clock.pack(pady=12)
    tk.Label(root, text="typed:", font=("DejaVu Sans", 16), fg="#9ca3af", bg="#1f2937").pack()
    tk.Label(
        root, textvariable=typed, font=("DejaVu Sans Mono", 22), fg="white", bg="#374151", width=40
    ).pack(pady=6)
    tk.Label(root, text="clicks:", font=("DejaVu Sans", 16), fg="#9ca3af", bg="#1f2937").pack()
    tk.Label(
        root, textvariable=clicks, font=("DejaVu Sans Mono", 22), fg="white", bg="#374151", width=8
    ).pack(pady=6)

    def record(kind: str, value: str) -> None:
        with log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps({"event": kind, "value": value, "at": time.time()}) + "\n")

    def on_key(event: tk.Event) -> None:
        if event.char and event.char.isprintable():
            typed.set((typed.get() + event.char)[-60:])
            record("key", event.char)

    def on_click(event: tk.Event) -> None:
        clicks.set(clicks.get() + 1)
        record("click", f"{event.x_root},{event.y_root}")

    def tick() -> None:
        now = time.time()
        clock.configure(text=time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now * 10) % 10}")
        root.after(200, tick)

    root.bind_all("<Key>", on_key)
    root.bind_all("<Button>", on_click)
    tick()
    root.after(300, root.focus_force)
    root.mainloop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
