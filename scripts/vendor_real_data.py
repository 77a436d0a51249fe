"""Rebuild tests/data/real/coads_climatology_sst.nc from Debian's ferret-datasets package.

Run from the repository root on a Debian machine (needs network once):
``python scripts/vendor_real_data.py``. It downloads the package with ``apt-get download``,
checks the file's sha256 and keeps the SST variable unchanged (zlib-compressed).
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

SHA256 = "b94f55034d13d63f33e2153afddc0c5e00347076c35ab3e34937aec38ce9c4c1"
OUT = Path("tests/data/real/coads_climatology_sst.nc")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", "ferret-datasets"], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("ferret-datasets_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), "root"], cwd=tmp, check=True)
        src = Path(tmp) / "root/usr/share/ferret-vis/data/coads_climatology.cdf"
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        if digest != SHA256:
            raise SystemExit(f"{src.name} has sha256 {digest}, expected {SHA256}")
        ds = xr.open_dataset(src, decode_times=False)
        out = ds[["SST"]]
        encoding = {"SST": {"zlib": True, "complevel": 9, "dtype": "float32",
                            "_FillValue": ds["SST"].encoding["_FillValue"]}}
        encoding.update({c: {"_FillValue": None} for c in ("TIME", "COADSY", "COADSX")})
        partial = OUT.with_suffix(".partial")
        out.to_netcdf(partial, encoding=encoding, format="NETCDF4")
        check = xr.open_dataset(partial, decode_times=False)
        if not np.array_equal(check["SST"].values, ds["SST"].values, equal_nan=True):
            raise SystemExit("the written SST differs from the source")
        check.close()
        partial.replace(OUT)
        print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
