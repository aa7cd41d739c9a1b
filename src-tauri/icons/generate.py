#!/usr/bin/env python3
"""Draws Berth's icons (needs Pillow: Debian's python3-pil or `pip install pillow`).

App icon: a blue rounded square with a white ship hull carrying three
containers. Tray icons (32 px): the same hull on a disc whose colour is the
state (grey disconnected, amber connecting, green connected, red error),
ringed in white and outlined in near-black so they read on light and dark
panels. Run from anywhere: `python3 src-tauri/icons/generate.py`.
"""
import os

from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
SS = 8  # supersampling factor for smooth edges


def ship(d, s, cx, cy, scale, fg, box_colors):
    """Hull and containers centred on (cx, cy), `scale` is the hull width."""
    w = scale
    top = cy + 0.02 * w
    hull = [
        (cx - 0.50 * w, top),
        (cx + 0.50 * w, top),
        (cx + 0.36 * w, top + 0.26 * w),
        (cx - 0.36 * w, top + 0.26 * w),
    ]
    d.polygon(hull, fill=fg)
    bw, bh, gap = 0.22 * w, 0.20 * w, 0.05 * w
    x0 = cx - (3 * bw + 2 * gap) / 2
    for i, c in enumerate(box_colors):
        x = x0 + i * (bw + gap)
        d.rectangle([x, top - gap - bh, x + bw, top - gap], fill=c)


def app_icon(size):
    n = size * SS
    img = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    r = int(n * 0.22)
    d.rounded_rectangle([0, 0, n - 1, n - 1], radius=r, fill=(30, 99, 196, 255))
    # waterline
    d.rectangle([int(n * 0.12), int(n * 0.74), int(n * 0.88), int(n * 0.78)], fill=(120, 180, 240, 255))
    ship(d, n, n / 2, n * 0.44, n * 0.70, (255, 255, 255, 255),
         [(255, 200, 60, 255), (255, 255, 255, 255), (255, 120, 90, 255)])
    return img.resize((size, size), Image.LANCZOS)


def tray_icon(size, color, mark=None):
    n = size * SS
    img = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    pad = int(n * 0.03)
    d.ellipse([pad, pad, n - 1 - pad, n - 1 - pad], fill=(20, 20, 20, 255))  # dark outline
    o = pad + int(n * 0.05)
    d.ellipse([o, o, n - 1 - o, n - 1 - o], fill=(255, 255, 255, 255))  # white ring
    i = o + int(n * 0.07)
    d.ellipse([i, i, n - 1 - i, n - 1 - i], fill=color)
    white = (255, 255, 255, 255)
    if mark == "!":
        w = n * 0.11
        d.rounded_rectangle([n / 2 - w / 2, n * 0.25, n / 2 + w / 2, n * 0.60], radius=w / 2, fill=white)
        d.ellipse([n / 2 - w / 2, n * 0.66, n / 2 + w / 2, n * 0.66 + w], fill=white)
    elif mark == "...":
        r = n * 0.065
        for k in (-1, 0, 1):
            x = n / 2 + k * n * 0.2
            d.ellipse([x - r, n * 0.73 - r, x + r, n * 0.73 + r], fill=white)
        ship(d, n, n / 2, n * 0.38, n * 0.52, white, [white, white, white])
    else:
        ship(d, n, n / 2, n * 0.47, n * 0.56, white, [white, white, white])
    return img.resize((size, size), Image.LANCZOS)


def main():
    for s in (32, 128, 256):
        app_icon(s).save(os.path.join(HERE, f"{s}x{s}.png"))
    app_icon(512).save(os.path.join(HERE, "icon.png"))
    states = {
        "disconnected": ((128, 128, 128, 255), None),
        "connecting": ((232, 160, 20, 255), "..."),
        "connected": ((34, 160, 70, 255), None),
        "error": ((210, 40, 40, 255), "!"),
    }
    for name, (color, mark) in states.items():
        tray_icon(32, color, mark).save(os.path.join(HERE, f"tray-{name}.png"))


if __name__ == "__main__":
    main()
