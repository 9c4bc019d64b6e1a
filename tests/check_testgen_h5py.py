"""h5py reads a file written by `cnflow generate testgen`: shapes, dtypes, chunking, column and
provenance attributes, split record, and values against testgen's definition (data.h).

usage: /usr/bin/python3 check_testgen_h5py.py FILE N SEED
"""
import sys

import h5py
import numpy as np


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def main():
    path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with h5py.File(path, "r") as f:
        assert text(f.attrs["generator"]) == "testgen", f.attrs["generator"]
        assert int(f.attrs["n_events"]) == n and int(f.attrs["seed"]) == seed
        options = text(f.attrs["options"]).splitlines()
        assert f"seed={seed}" in options and f"n={n}" in options, options
        assert [text(s) for s in f.attrs["split_names"]] == ["train", "val", "test"]
        ranges = np.asarray(f.attrs["split_ranges"])
        assert ranges.shape == (3, 2) and ranges[0, 0] == 0, ranges
        assert (ranges[1:, 0] == ranges[:-1, 0] + ranges[:-1, 1]).all(), ranges
        assert ranges[:, 1].sum() == n, ranges
        assert ranges[0, 1] == int(np.floor(0.8 * n + 0.5)), ranges  # default fractions

        expect = {"truth": (np.float64, ["event_id", "x", "u"]),
                  "cond": (np.float32, ["energy"]),
                  "aux/meta": (np.int32, ["attempts", "fold"])}
        for name, (dtype, cols) in expect.items():
            d = f[name]
            assert d.shape == (n, len(cols)) and d.dtype == dtype, (name, d.shape, d.dtype)
            assert d.chunks is not None and d.chunks[1] == len(cols), (name, d.chunks)
            assert [text(c) for c in d.attrs["columns"]] == cols, (name, d.attrs["columns"])
            assert len(d.attrs["units"]) == len(cols) and text(d.attrs["description"])
        assert text(f["cond"].attrs["units"][0]) == "GeV"

        truth, cond, meta = f["truth"][:], f["cond"][:], f["aux/meta"][:]
    ids = np.arange(n)
    assert (truth[:, 0] == ids).all(), "event_id column is not the row index"
    assert (np.abs(truth[:, 1]) < 1.5).all(), "x outside the rejection cut"
    assert ((truth[:, 2] > 0) & (truth[:, 2] < 1)).all(), "u outside (0, 1)"
    assert (cond[:, 0] == (1 + 99 * truth[:, 2]).astype(np.float32)).all(), "energy != 1 + 99 u"
    assert (meta[:, 1] == ids % 10).all() and (meta[:, 0] >= 1).all(), "bad meta columns"
    print(f"PASS: h5py read {path}: {n} rows, 3 datasets, split {ranges[:, 1].tolist()}")


if __name__ == "__main__":
    main()
