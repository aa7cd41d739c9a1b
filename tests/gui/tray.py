#!/usr/bin/python3
"""Reads and clicks a tray item's menu over D-Bus, as a StatusNotifier host would.

The item is found in tests/gui/sni_watcher.py's RegisteredStatusNotifierItems
("<bus name><object path>"), its org.kde.StatusNotifierItem `Menu` property
names a com.canonical.dbusmenu object, whose GetLayout(0, -1, []) is the menu
and Event(id, "clicked", …) is a click.

  tray.py items                     registered items and their properties (JSON)
  tray.py menu                      the menu: [{id, label, type, enabled, visible,
                                    toggle_type, toggle_state, children}] (JSON)
  tray.py click LABEL [--prefix]    clicks the item whose label is LABEL (or starts with it)
  tray.py wait TEXT [--timeout S] [--gone]
                                    prints "ready", then polls the menu until an item's
                                    label contains TEXT (or, with --gone, no longer does);
                                    prints {"at": UNIX-SECONDS, "label": …} (exit 1 on timeout)

Common options: --pid PID (the item owned by that process), --wait S (wait up to S
seconds for the item to register; default 10). Needs /usr/bin/python3 with python3-dbus.
"""
import argparse
import json
import sys
import time

import dbus

WATCHER = "org.kde.StatusNotifierWatcher"
SNI = "org.kde.StatusNotifierItem"
DBUSMENU = "com.canonical.dbusmenu"
PROPS = "org.freedesktop.DBus.Properties"


def plain(v):
    """dbus-python values -> JSON-able Python values."""
    if isinstance(v, (dbus.Boolean,)):
        return bool(v)
    if isinstance(v, (dbus.Int16, dbus.Int32, dbus.Int64, dbus.UInt16, dbus.UInt32, dbus.UInt64, dbus.Byte)):
        return int(v)
    if isinstance(v, (dbus.Double,)):
        return float(v)
    if isinstance(v, (dbus.String, dbus.ObjectPath, dbus.Signature)):
        return str(v)
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def registered(bus):
    w = bus.get_object(WATCHER, "/StatusNotifierWatcher")
    return [str(i) for i in w.Get(WATCHER, "RegisteredStatusNotifierItems", dbus_interface=PROPS)]


def owner_pid(bus, name):
    d = bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus")
    return int(d.GetConnectionUnixProcessID(name, dbus_interface="org.freedesktop.DBus"))


def find_item(bus, pid=None, wait=10.0):
    """(bus name, object path) of the item; the newest one unless pid is given."""
    deadline = time.time() + wait
    while True:
        found = []
        try:
            for item in registered(bus):
                name, _, path = item.partition("/")
                try:
                    if pid is None or owner_pid(bus, name) == pid:
                        found.append((name, "/" + path))
                except dbus.DBusException:
                    pass  # gone meanwhile
        except dbus.DBusException as e:
            if time.time() >= deadline:
                sys.exit(f"tray.py: no StatusNotifierWatcher on the session bus: {e}")
        if found:
            return found[-1]
        if time.time() >= deadline:
            sys.exit("tray.py: no tray item registered" + (f" by pid {pid}" if pid else ""))
        time.sleep(0.05)


def item_props(bus, name, path):
    o = bus.get_object(name, path)
    return plain(o.GetAll(SNI, dbus_interface=PROPS))


def menu_object(bus, name, path):
    o = bus.get_object(name, path)
    menu = str(o.Get(SNI, "Menu", dbus_interface=PROPS))
    return bus.get_object(name, menu)


def layout(menu):
    try:
        menu.AboutToShow(dbus.Int32(0), dbus_interface=DBUSMENU)
    except dbus.DBusException:
        pass
    _rev, root = menu.GetLayout(dbus.Int32(0), dbus.Int32(-1), dbus.Array([], signature="s"), dbus_interface=DBUSMENU)

    def node(n):
        nid, props, children = n
        p = plain(props)
        return {
            "id": int(nid),
            "label": p.get("label", ""),
            "type": p.get("type", "standard"),
            "enabled": p.get("enabled", True),
            "visible": p.get("visible", True),
            "toggle_type": p.get("toggle-type", ""),
            "toggle_state": p.get("toggle-state", -1),
            "children": [node(c) for c in children],
        }

    return [node(c) for c in root[2]]


def flatten(items):
    for i in items:
        yield i
        yield from flatten(i["children"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int)
    ap.add_argument("--wait", type=float, default=10.0)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("items")
    sub.add_parser("menu")
    c = sub.add_parser("click")
    c.add_argument("label")
    c.add_argument("--prefix", action="store_true")
    w = sub.add_parser("wait")
    w.add_argument("text")
    w.add_argument("--timeout", type=float, default=10.0)
    w.add_argument("--gone", action="store_true")
    a = ap.parse_args()

    bus = dbus.SessionBus()
    if a.cmd == "items":
        out = []
        for item in registered(bus):
            name, _, path = item.partition("/")
            entry = {"item": item, "name": name, "path": "/" + path}
            try:
                entry["pid"] = owner_pid(bus, name)
                entry["props"] = item_props(bus, name, "/" + path)
            except dbus.DBusException as e:
                entry["error"] = str(e)
            out.append(entry)
        print(json.dumps(out, indent=1))
        return
    name, path = find_item(bus, a.pid, a.wait)
    menu = menu_object(bus, name, path)
    if a.cmd == "menu":
        print(json.dumps(layout(menu), indent=1, ensure_ascii=False))
    elif a.cmd == "click":
        items = list(flatten(layout(menu)))
        hits = [i for i in items if (i["label"].startswith(a.label) if a.prefix else i["label"] == a.label)]
        if not hits:
            sys.exit(f"tray.py: no menu item labelled {a.label!r}; have {[i['label'] for i in items]}")
        menu.Event(dbus.Int32(hits[0]["id"]), "clicked", dbus.Int32(0, variant_level=1),
                   dbus.UInt32(int(time.time()) & 0xFFFFFFFF), dbus_interface=DBUSMENU)
        print(json.dumps({"clicked": hits[0]["id"], "label": hits[0]["label"]}, ensure_ascii=False))
    elif a.cmd == "wait":
        print("ready", flush=True)
        deadline = time.time() + a.timeout
        labels = []
        while True:
            try:
                labels = [i["label"] for i in flatten(layout(menu))]
            except dbus.DBusException:
                labels = []
            hit = next((lb for lb in labels if a.text in lb), None)
            if (hit is None) == a.gone:
                print(json.dumps({"at": time.time(), "label": hit, "labels": labels}, ensure_ascii=False), flush=True)
                return
            if time.time() >= deadline:
                print(json.dumps({"timeout": True, "labels": labels}, ensure_ascii=False), flush=True)
                sys.exit(1)
            time.sleep(0.01)


if __name__ == "__main__":
    main()
