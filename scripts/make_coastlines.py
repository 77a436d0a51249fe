"""Build the offline coastline outline shipped in ``xearthformer/plot/data/``.

cartopy downloads Natural Earth coastlines the first time a map draws them;
without a network that fails (or hangs). ``xearthformer.plot`` therefore ships
a small 1:110m coastline of its own, used whenever cartopy's Natural Earth
shapefile is not already on disk.

Source
------
Natural Earth 1:110m land (public domain, https://www.naturalearthdata.com),
version 4.1.0, as redistributed in TopoJSON by the npm package
``world-atlas@2.0.2`` (file ``land-110m.json``; ISC licence, Michael Bostock).
Get it once with the ordinary npm client::

    cd /tmp && npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz

then run::

    python scripts/make_coastlines.py /tmp/package/land-110m.json

What the script does
--------------------
1. decodes the TopoJSON topology itself (quantised, delta-encoded arcs; arc
   index ``~i`` means arc ``i`` reversed) into the rings of the land
   MultiPolygon, in longitude/latitude degrees;
2. turns the rings into coastlines: edges that are not coast (segments lying
   on the antimeridian, where Natural Earth cuts Chukotka, Fiji and Wrangel
   Island, and edges that wrap from +180 to -180 where world-atlas merged the
   land across the antimeridian) are dropped, splitting the rings into open
   polylines that never cross the antimeridian;
3. rounds the coordinates to 0.01 degree and stores them as int16
   centi-degrees in a compressed ``.npz``: ``lon``, ``lat`` (all points, lines
   concatenated), ``start`` (index of each line's first point), and
   ``source`` / ``version`` / ``licence`` strings (no pickled objects).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SOURCE = "Natural Earth 1:110m land v4.1.0, via npm package world-atlas@2.0.2 (land-110m.json)"
VERSION = "world-atlas 2.0.2 / Natural Earth 4.1.0"
LICENCE = "Natural Earth: public domain; world-atlas packaging: ISC (c) 2013-2019 Michael Bostock"
DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "xearthformer" / "plot" / "data" / "coastline_110m.npz"
)


def decode_arcs(topology: dict) -> list[np.ndarray]:
    """Absolute lon/lat coordinates of every arc, shape ``(n, 2)`` each."""
    transform = topology.get("transform")
    arcs = []
    for arc in topology["arcs"]:
        a = np.asarray(arc, dtype=float)
        if transform is not None:
            a = np.cumsum(a, axis=0) * np.asarray(transform["scale"]) + np.asarray(
                transform["translate"]
            )
        arcs.append(a)
    return arcs


def ring_coords(ring: list[int], arcs: list[np.ndarray]) -> np.ndarray:
    """Join the arcs of one ring; a negative index ``~i`` is arc ``i`` reversed."""
    parts = []
    for k, index in enumerate(ring):
        a = arcs[index] if index >= 0 else arcs[~index][::-1]
        parts.append(a if k == 0 else a[1:])  # consecutive arcs share an end point
    return np.concatenate(parts)


def land_rings(topology: dict, name: str = "land") -> list[np.ndarray]:
    """All rings (outer and holes) of the polygons in ``objects[name]``."""
    arcs = decode_arcs(topology)
    rings: list[np.ndarray] = []

    def visit(geometry: dict) -> None:
        kind = geometry["type"]
        if kind == "GeometryCollection":
            for g in geometry["geometries"]:
                visit(g)
        elif kind == "Polygon":
            rings.extend(ring_coords(r, arcs) for r in geometry["arcs"])
        elif kind == "MultiPolygon":
            for polygon in geometry["arcs"]:
                rings.extend(ring_coords(r, arcs) for r in polygon)

    visit(topology["objects"][name])
    return rings


def _is_break(p: np.ndarray, q: np.ndarray) -> bool:
    """True where the edge p -> q is not coastline that can be drawn in lon/lat.

    world-atlas merges land across the antimeridian, so a ring can step from
    ``179.99`` to ``-180`` (an edge that would be drawn across the whole map in
    plate carree), and Natural Earth's cuts along the antimeridian (Chukotka,
    Fiji, Wrangel Island) remain as edges with both ends at ``+-180``.
    """
    on_meridian = abs(p[0]) > 179.99 and abs(q[0]) > 179.99
    wraps = abs(p[0] - q[0]) > 180.0
    return bool(on_meridian or wraps)


def coastlines(rings: list[np.ndarray]) -> list[np.ndarray]:
    """Split rings into polylines where an edge is a cut or wraps, not a coast."""
    lines = []
    for ring in rings:
        keep = [not _is_break(ring[i], ring[i + 1]) for i in range(len(ring) - 1)]
        if all(keep):
            lines.append(ring)
            continue
        # rotate the closed ring so it starts just after a cut, then split at each cut
        first_cut = keep.index(False)
        order = np.r_[np.arange(first_cut + 1, len(ring) - 1), np.arange(0, first_cut + 1)]
        pts = ring[:-1][order]
        flags = [keep[i] for i in order]
        current = [pts[0]]
        for j in range(1, len(pts)):
            if flags[j - 1]:
                current.append(pts[j])
            else:
                if len(current) > 1:
                    lines.append(np.array(current))
                current = [pts[j]]
        # the segment back to the start is the cut itself (flags[-1] is False)
        if len(current) > 1:
            lines.append(np.array(current))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topojson", type=Path, help="world-atlas land-110m.json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    topology = json.loads(args.topojson.read_text())
    rings = land_rings(topology)
    lines = coastlines(rings)

    lon = np.concatenate([np.round(ln[:, 0] * 100) for ln in lines]).astype(np.int16)
    lat = np.concatenate([np.round(ln[:, 1] * 100) for ln in lines]).astype(np.int16)
    start = np.cumsum([0] + [len(ln) for ln in lines[:-1]]).astype(np.int32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        lon=lon,
        lat=lat,
        start=start,
        source=np.array(SOURCE),
        version=np.array(VERSION),
        licence=np.array(LICENCE),
    )
    print(f"{len(rings)} rings -> {len(lines)} lines, {lon.size} points, "
          f"{args.out.stat().st_size} bytes -> {args.out}")


if __name__ == "__main__":
    main()
