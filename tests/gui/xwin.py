#!/usr/bin/python3
"""X11 side of the GUI tests (python3-xlib), as a window manager would act.

  xwin.py list [--pid PID]     top-level windows: [{id, name, pid, mapped}] (JSON)
  xwin.py close --pid PID      asks each mapped top-level window of PID to close
                               (WM_PROTOCOLS / WM_DELETE_WINDOW, what a title bar's
                               close button sends); prints how many were asked
"""
import argparse
import json
import sys

from Xlib import X, display, protocol


def windows(d):
    root = d.screen().root
    pid_atom = d.intern_atom("_NET_WM_PID")
    out = []

    def walk(w, depth):
        try:
            children = w.query_tree().children
        except Exception:
            return
        for c in children:
            try:
                attrs = c.get_attributes()
                name = c.get_wm_name()
                p = c.get_full_property(pid_atom, X.AnyPropertyType)
                protocols = c.get_wm_protocols() or []
            except Exception:
                continue
            if p is not None or name:
                out.append({
                    "id": c.id,
                    "name": name if isinstance(name, str) else (name.decode() if name else ""),
                    "pid": int(p.value[0]) if p is not None else None,
                    "mapped": attrs.map_state == X.IsViewable,
                    "protocols": [d.get_atom_name(a) for a in protocols],
                    "win": c,
                })
            if depth < 2:
                walk(c, depth + 1)

    walk(root, 0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["list", "close"])
    ap.add_argument("--pid", type=int)
    a = ap.parse_args()
    d = display.Display()
    ws = [w for w in windows(d) if a.pid is None or w["pid"] == a.pid]
    if a.cmd == "list":
        print(json.dumps([{k: v for k, v in w.items() if k != "win"} for w in ws], indent=1))
        return
    wm_protocols = d.intern_atom("WM_PROTOCOLS")
    wm_delete = d.intern_atom("WM_DELETE_WINDOW")
    n = 0
    for w in ws:
        if not w["mapped"] or "WM_DELETE_WINDOW" not in w["protocols"]:
            continue
        ev = protocol.event.ClientMessage(window=w["win"], client_type=wm_protocols,
                                          data=(32, [wm_delete, X.CurrentTime, 0, 0, 0]))
        w["win"].send_event(ev, event_mask=0)
        n += 1
    d.flush()
    d.sync()
    print(json.dumps({"asked": n}))
    if n == 0:
        sys.exit("xwin.py: no mapped window" + (f" of pid {a.pid}" if a.pid else "") + " to close")


if __name__ == "__main__":
    main()
