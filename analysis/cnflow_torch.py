#!/usr/bin/python3
"""Rebuild a cnflow model file as a PyTorch model (the independent peer of shared/bench).

Usage as a library (physicists: this is how to get a trained cnflow flow into PyTorch):

    import sys; sys.path.insert(0, "<cnflow>/analysis")
    import cnflow_torch
    model = cnflow_torch.load("model.h5")            # float64 by default
    logp = model.log_prob(x, c)                      # x (n, D), c (n, C) raw conditions
    x_new, logp_new = model.sample(c, generator=torch.Generator().manual_seed(1))
    x_z, logdet = model.inverse(z, c)                # sampling direction from given latents
    flat = model.params_to_cnflow()                  # parameters back in cnflow's order
    grads = model.grads_to_cnflow()                  # .grad of every tensor, cnflow's order

What it builds: the MAF blocks are the peer's own classes (CondMAF / MAFBlock / CondMADE from
torch_flows.py, imported from $CNFLOW_PEER_DIR, default <repo>/../shared/bench), so a density
computed here is an independent re-implementation of cnflow's.  The model file is read with
h5py; its layout (include/cnflow/flow.h, README "Model file"):
    /            attrs format = "cnflow-model", format_version = 1
    /model       attrs dim, cond_dim, n_bijectors, n_params, real_type
    /model/params                   (n_params) every trainable parameter, spec order
    /model/bijectors/NNN            attrs kind, param_offset, n_params, hidden, n_hidden, bins,
                                    tail_bound, min_bin_width, min_bin_height, min_derivative,
                                    scale_kind ("exp" / "exp_tanh"); dataset perm (permute)
    /model/condition/{map,shift,scale}   c' = (map(c) - shift) * scale, map 0 id, 1 log10, 2 ln
Supported chains: [tanh] [permute] maf ([permute] maf)*  with all MAF blocks alike (all affine or all RQS,
same width/depth/bins): the three reference architectures and the toy.

How cnflow's parameters map onto the peer's (the contract is flow.h's "Parameter layout"):
  * hidden units: cnflow sorts the peer's degree sequence deg(k) = k % max(1, D-1) + min(1, D-1)
    ascending (stable), so cnflow's hidden unit j is the peer's unit argsort(deg)[j];
  * MADE output rows: cnflow is dimension-major (row d*P + p), the peer parameter-major
    (row p*D + d);
  * RQS width/height logits: the peer divides them by sqrt(hidden) internally, cnflow does not,
    so those output rows (weights, biases, Wc) are multiplied by sqrt(hidden) when loading;
  * cnflow's direct condition -> output weights Wc (D*P, C) have no counterpart in the peer:
    they are cnflow's deliberate fix of the "first-feature" bug of conditional MADEs (in the
    peer, as in nflows, the first dimension's parameters cannot depend on c at all).  They are
    added here by replacing each peer CondMADE.forward with one that adds c @ Wc^T (Wc held as
    an extra parameter `cnflow_wc`, in the peer's parameter-major row order);
  * scale_kind "exp_tanh" (s = tanh(u)) is applied in the same patched forward; the peer's own
    affine uses s = u ("exp");
  * the peer's sliced inversion reads the output layer directly and would bypass the patched
    forward, so sampling uses the peer's naive inversion (D full MADE passes per block).
"""
import math
import os
import sys
import types

import h5py
import numpy as np
import torch
import torch.nn.functional as F

_HERE = os.path.dirname(os.path.abspath(__file__))
PEER_DIR = os.environ.get("CNFLOW_PEER_DIR",
                          os.path.join(os.path.dirname(_HERE), "..", "shared", "bench"))
if PEER_DIR not in sys.path:
    sys.path.insert(0, PEER_DIR)
try:
    import torch_flows as tf  # the PyTorch peer
except ImportError as e:  # pragma: no cover - reported to the user as one clear line
    raise ImportError(f"cnflow_torch: cannot import torch_flows.py from {PEER_DIR} "
                      f"(set CNFLOW_PEER_DIR): {e}") from e

COND_MAPS = {0: lambda c: c, 1: torch.log10, 2: torch.log}


def _attr(group, name, default=None):
    v = group.attrs.get(name, default)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray) and v.shape == (1,):
        v = v[0]
    if isinstance(v, (np.bytes_,)):
        return v.decode()
    return v


def read_model_file(path):
    """The model file as plain Python: dict(dim, cond_dim, params (np.float64), bijectors=[dict],
    cond_map, cond_shift, cond_scale, real_type)."""
    with h5py.File(path, "r") as f:
        if _attr(f, "format") != "cnflow-model":
            raise ValueError(f"{path}: not a cnflow model file (root attribute format != cnflow-model)")
        if int(_attr(f, "format_version", 0)) != 1:
            raise ValueError(f"{path}: unsupported format_version {_attr(f, 'format_version')}")
        m = f["model"]
        out = dict(dim=int(_attr(m, "dim")), cond_dim=int(_attr(m, "cond_dim")),
                   n_params=int(_attr(m, "n_params")), real_type=str(_attr(m, "real_type", "")),
                   params=np.asarray(m["params"][...], dtype=np.float64).reshape(-1))
        if out["params"].size != out["n_params"]:
            raise ValueError(f"{path}: /model/params has {out['params'].size} values, "
                             f"n_params = {out['n_params']}")
        bij = []
        g = m["bijectors"]
        for name in sorted(g.keys()):
            b = g[name]
            d = {k: _attr(b, k) for k in b.attrs.keys()}
            if "perm" in b:
                d["perm"] = np.asarray(b["perm"][...], dtype=np.int64)
            bij.append(d)
        if len(bij) != int(_attr(m, "n_bijectors")):
            raise ValueError(f"{path}: {len(bij)} bijector groups, n_bijectors = {_attr(m, 'n_bijectors')}")
        out["bijectors"] = bij
        C = out["cond_dim"]
        if "condition" in m:
            cg = m["condition"]
            out["cond_map"] = np.asarray(cg["map"][...]).reshape(-1) if "map" in cg else np.zeros(C, int)
            out["cond_shift"] = np.asarray(cg["shift"][...], np.float64).reshape(-1) if "shift" in cg else np.zeros(C)
            out["cond_scale"] = np.asarray(cg["scale"][...], np.float64).reshape(-1) if "scale" in cg else np.ones(C)
        else:
            out["cond_map"], out["cond_shift"], out["cond_scale"] = np.zeros(C, int), np.zeros(C), np.ones(C)
        return out


def _cond_map_code(v):
    if isinstance(v, (bytes, np.bytes_)):
        v = v.decode()
    if isinstance(v, str):
        return {"identity": 0, "log10": 1, "log": 2, "ln": 2}[v]
    return int(v)


def _made_index_maps(D, C, H, L, P, offset, rqs_bins):
    """For one MADE: (peer attribute path, index array into cnflow's flat buffer, scale array) for
    every peer tensor.  peer_tensor = scale * flat[index] element by element (a bijection)."""
    deg = np.arange(H) % max(1, D - 1) + min(1, D - 1)
    perm = np.argsort(deg, kind="stable")  # cnflow unit j = peer unit perm[j]
    maps = []
    o = offset

    def take(n):
        nonlocal o
        idx = np.arange(o, o + n)
        o += n
        return idx

    w0 = take(H * (D + C)).reshape(H, D + C)
    pw0 = np.empty_like(w0)
    pw0[perm, :] = w0
    b0 = take(H)
    pb0 = np.empty_like(b0)
    pb0[perm] = b0
    maps += [("hidden_layers.0.weight", pw0, None), ("hidden_layers.0.bias", pb0, None)]
    for l in range(1, L):
        w = take(H * H).reshape(H, H)
        pw = np.empty_like(w)
        pw[np.ix_(perm, perm)] = w
        b = take(H)
        pb = np.empty_like(b)
        pb[perm] = b
        maps += [(f"hidden_layers.{l}.weight", pw, None), (f"hidden_layers.{l}.bias", pb, None)]
    # output rows: cnflow r = d*P + p  ->  peer p*D + d
    d_idx, p_idx = np.divmod(np.arange(D * P), P)
    peer_row = p_idx * D + d_idx
    row_scale = np.ones(D * P)
    if rqs_bins:
        row_scale[peer_row[p_idx < 2 * rqs_bins]] = math.sqrt(H)  # peer divides logits by sqrt(H)
    wout = take(D * P * H).reshape(D * P, H)
    pwout = np.empty_like(wout)
    pwout[np.ix_(peer_row, perm)] = wout
    bout = take(D * P)
    pbout = np.empty_like(bout)
    pbout[peer_row] = bout
    wc = take(D * P * C).reshape(D * P, C)
    pwc = np.empty_like(wc)
    pwc[peer_row, :] = wc
    maps += [("out.weight", pwout, row_scale[:, None] * np.ones((1, H))),
             ("out.bias", pbout, row_scale.copy()),
             ("cnflow_wc", pwc, row_scale[:, None] * np.ones((1, C)))]
    return maps, o - offset


def _patched_made_forward(self, x, c):
    """Peer CondMADE.forward plus cnflow's direct condition -> output term (and exp_tanh)."""
    out = self.out(self.hidden_state(x, c)) + F.linear(c, self.cnflow_wc)
    out = out.view(x.shape[0], self.P, self.D)
    if self.cnflow_scale_tanh:  # cnflow CNF_AFFINE_SCALE_EXP_TANH: s = tanh(u)
        out = torch.cat([out[:, :1], torch.tanh(out[:, 1:2]), out[:, 2:]], dim=1)
    return out


class CnflowTorchModel(torch.nn.Module):
    """A cnflow model as a torch module: condition transform + the peer's CondMAF."""

    def __init__(self, info, dtype=torch.float64):
        super().__init__()
        self.info = info
        D, C = info["dim"], info["cond_dim"]
        kinds = [b["kind"] for b in info["bijectors"]]
        k = 0
        final_tanh = False
        if kinds and kinds[0] == "tanh":
            final_tanh, k = True, 1
        # a permutation before the first MAF block (preset "cnf") has no place in CondMAF; it
        # commutes with the elementwise tanh, so it is applied to x before the peer's forward
        lead = np.arange(D)
        while k < len(kinds) and kinds[k] == "permute":
            lead = lead[info["bijectors"][k]["perm"]]
            k += 1
        self.register_buffer("lead_perm", torch.as_tensor(lead, dtype=torch.long))
        self.register_buffer("lead_inv", torch.argsort(self.lead_perm))
        mafs, perms = [], []
        while k < len(kinds):
            if kinds[k] not in ("maf_affine", "maf_rqs"):
                raise NotImplementedError(f"cnflow_torch: bijector {k} kind '{kinds[k]}' is not supported "
                                          f"(chains [tanh] [permute] maf ([permute] maf)* only)")
            mafs.append(info["bijectors"][k])
            k += 1
            if k < len(kinds):
                if kinds[k] == "permute":
                    perms.append(info["bijectors"][k]["perm"])
                    k += 1
                else:
                    perms.append(np.arange(D))
                if k >= len(kinds):
                    raise NotImplementedError("cnflow_torch: chain ends with a permutation")
        if not mafs:
            raise NotImplementedError("cnflow_torch: no MAF block in the model")
        first = mafs[0]
        keys = ("kind", "hidden", "n_hidden", "bins", "tail_bound")
        for b in mafs:
            if any(b.get(kk) != first.get(kk) for kk in keys if kk in first):
                raise NotImplementedError("cnflow_torch: MAF blocks with different architectures")
        transform = "affine" if first["kind"] == "maf_affine" else "rqs"
        H, L = int(first["hidden"]), int(first["n_hidden"])
        bins = int(first["bins"]) if transform == "rqs" else None
        tail = float(first["tail_bound"]) if transform == "rqs" else None
        if transform == "rqs":
            for name, attr in (("MIN_BIN_WIDTH", "min_bin_width"), ("MIN_BIN_HEIGHT", "min_bin_height"),
                               ("MIN_DERIVATIVE", "min_derivative")):
                v = float(first.get(attr, getattr(tf, name)))
                if abs(v - getattr(tf, name)) > 1e-15:  # module constants in the peer
                    setattr(tf, name, v)
        self.maf = tf.CondMAF(D, C, H, L, len(mafs), transform, bins=bins, tail_bound=tail,
                              permutation="reverse", final_tanh=final_tanh).to(dtype)
        if perms:
            pm = torch.as_tensor(np.stack(perms), dtype=torch.long)
            self.maf.perms.copy_(pm)
            self.maf.inv_perms.copy_(torch.argsort(pm, dim=1))
        P = self.maf.blocks[0].P
        self.maps = []  # (tensor, index, scale) triples
        for blk, b in zip(self.maf.blocks, mafs):
            made = blk.made
            made.cnflow_wc = torch.nn.Parameter(torch.zeros(D * P, C, dtype=dtype))
            made.cnflow_scale_tanh = transform == "affine" and str(b.get("scale_kind", "exp")) == "exp_tanh"
            made.forward = types.MethodType(_patched_made_forward, made)
            # sliced inversion bypasses made.forward (reads made.out directly): use naive
            blk.inverse_sliced = blk.inverse_naive
            maps, n = _made_index_maps(D, C, H, L, P, int(b["param_offset"]), bins)
            if n != int(b["n_params"]):
                raise ValueError(f"cnflow_torch: MAF block has n_params {b['n_params']}, layout gives {n}")
            for path, idx, scale in maps:
                t = made.get_parameter(path)
                self.maps.append((t, idx, np.ones(idx.shape) if scale is None else scale))
        self.register_buffer("cond_shift", torch.as_tensor(info["cond_shift"], dtype=dtype))
        self.register_buffer("cond_scale", torch.as_tensor(info["cond_scale"], dtype=dtype))
        self.cond_map = [_cond_map_code(v) for v in info["cond_map"]]
        self.params_from_cnflow(info["params"])

    # ---- parameter mapping ------------------------------------------------------------------
    @torch.no_grad()
    def params_from_cnflow(self, flat):
        flat = np.asarray(flat, dtype=np.float64)
        for t, idx, scale in self.maps:
            t.copy_(torch.as_tensor(scale * flat[idx], dtype=t.dtype))

    def params_to_cnflow(self):
        """Parameters in cnflow's flat order (masked weights come back as the peer stores them)."""
        return self._gather_scaled(lambda t, s: t.detach().cpu().numpy() / s)

    def grads_to_cnflow(self):
        """Gradients of every tensor (after .backward()) in cnflow's flat order."""
        return self._gather_scaled(lambda t, s: None if t.grad is None else t.grad.detach().cpu().numpy() * s)

    def _gather_scaled(self, fn):
        out = np.zeros(self.info["n_params"])
        for t, idx, scale in self.maps:
            v = fn(t, scale)
            if v is not None:
                np.add.at(out, idx, v)
        return out

    # ---- densities --------------------------------------------------------------------------
    def transform_condition(self, c):
        cols = [COND_MAPS[m](c[:, j]) for j, m in enumerate(self.cond_map)]
        cm = torch.stack(cols, dim=1) if cols else c
        return (cm - self.cond_shift) * self.cond_scale

    def log_prob(self, x, c):
        """log p(x | c) with raw conditions c (as cnflow's cnf_flow_log_prob)."""
        return self.maf.log_prob(x[:, self.lead_perm], self.transform_condition(c))

    @torch.no_grad()
    def inverse(self, z, c):
        """Sampling direction from given latents z: x and log|det dx/dz| (cnf_flow_inverse).
        The final tanh is applied here with the stable log-derivative
        log(1 - tanh(y)^2) = 2 (log 2 - y - softplus(-2y)): the peer's log1p(-x*x) is -inf
        once tanh(y) rounds to 1 (|y| > ~19 in float64)."""
        final_tanh = self.maf.final_tanh
        self.maf.final_tanh = False
        try:
            y, logdet = self.maf.inverse(z, self.transform_condition(c), mode="naive")
        finally:
            self.maf.final_tanh = final_tanh
        if final_tanh:
            logdet = logdet + (2.0 * (math.log(2.0) - y - F.softplus(-2.0 * y))).sum(-1)
            y = torch.tanh(y)
        return y[:, self.lead_inv], logdet

    @torch.no_grad()
    def sample(self, c, generator=None):
        """x ~ p(x | c) and log p(x | c) (peer's naive inversion, torch's own random numbers)."""
        z = torch.randn(c.shape[0], self.maf.D, dtype=c.dtype, device=c.device, generator=generator)
        x, logdet = self.inverse(z, c)
        return x, -0.5 * (z * z).sum(-1) - 0.5 * self.maf.D * tf.LOG_2PI - logdet


def load(path, dtype=torch.float64):
    """Read a cnflow model file and return the equivalent CnflowTorchModel."""
    return CnflowTorchModel(read_model_file(path), dtype=dtype)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: cnflow_torch.py MODEL.h5   (prints the architecture and parameter count)")
    m = load(sys.argv[1])
    info = m.info
    print(f"{sys.argv[1]}: D={info['dim']} C={info['cond_dim']} n_params={info['n_params']} "
          f"bijectors={[b['kind'] for b in info['bijectors']]}")
