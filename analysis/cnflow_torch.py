#!/usr/bin/python3
"""A cnflow model file as a PyTorch module: a self-contained re-implementation of every cnflow
bijector, written from the model-file documentation (README "Model file", include/cnflow/flow.h
"Parameter layout"), for densities, samples and gradients outside cnflow.

Usage as a library (physicists: this is how to get a trained cnflow flow into PyTorch):

    import sys; sys.path.insert(0, "<cnflow>/analysis")
    import cnflow_torch
    model = cnflow_torch.load("model.h5")            # float64 by default (dtype=...)
    logp = model.log_prob(x, c)                      # x (n, D), c (n, C) raw conditions
    x_new, logp_new = model.sample(c, generator=torch.Generator().manual_seed(1))
    x_z, logdet = model.inverse(z, c)                # sampling direction from given latents
    z, logdet = model.forward(x, c)                  # density direction: latents, log|det dz/dx|
    flat = model.params_to_cnflow()                  # parameters in /model/params order
    grads = model.grads_to_cnflow()                  # .grad after backward(), same order
    info = cnflow_torch.read_model_file("model.h5")  # the file as plain Python / numpy

Only torch, numpy and h5py are needed.  Every preset is supported (cnf, cnf_peer, paraflow,
flowi, flowi_paper, caloinn, toy) and so is any chain of the ten bijector kinds, including the
fixed preprocessing bijectors that `cnflow train` puts in front (tanh, logit, affine_fixed,
log, cond_scale) and the condition transform.

How the file maps onto the module
  * /model/params is held as ONE torch Parameter per trainable bijector, the bijector's slice
    params[param_offset : param_offset + n_params] verbatim; the forward passes read weights
    as views of it in flow.h's order.  params_to_cnflow / grads_to_cnflow are therefore plain
    concatenations, and parameter gradients line up with cnflow's gradient buffer element by
    element.
  * MADE (maf_affine, maf_rqs): W0 (H, D+C) [x columns, then c columns], b0, [W_l, b_l] for
    l = 1..L-1, Wout (D*P, H) with row d*P + p, bout, Wc (D*P, C).  Hidden degrees: the sequence
    deg(k) = k mod max(1, D-1) + min(1, D-1) for k = 0..H-1, stable-sorted ascending, the same in
    every hidden layer; input x_d (0-based d) has degree d+1.  Masks: hidden <- x_d where
    deg >= d+1, hidden <- hidden where deg_out >= deg_in, output of dimension d <- hidden where
    deg < d+1 (conditions never masked, Wc unmasked).  ReLU after every hidden layer.  The mask
    is applied by multiplication, so masked weights get zero gradients, as in cnflow.
  * maf_affine: (m, u) per dimension (P = 2), s = u ("exp") or tanh(u) ("exp_tanh"),
    z = (x - m) exp(-s), log|dz/dx| = -s; "shift": m alone (P = 1), z = x - m, log-det 0.
  * maf_rqs / coupling_rqs: [K width logits | K height logits | K-1 derivative logits] per
    element; sizes min + (1 - K min) softmax, knots -B .. B (cumulative sums, endpoints forced),
    interior derivatives min_d + softplus, boundary derivatives 1; bin = number of interior knots
    <= value; identity outside [-B, B].  coupling_rqs: x1 = first ceil(D/2) dims pass, theta =
    MLP([x1, c]) (LeakyReLU 0.01, rows j*P + p for x2_j); tails "event" leave the whole x2 of an
    event untouched if any |x2_j| > B (the same test on z2 when sampling), "element" are
    elementwise.
  * The evaluation is vectorised over events; sampling a MAF block inverts one dimension at a
    time (D MADE passes per block; cnflow computes the same values incrementally).
Inputs outside a bijector's domain (|x| >= 1 for tanh, logit argument outside (0, 1), log of
x + eps <= 0) raise ValueError naming the bijector, row and column, as cnflow refuses them.
"""
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)
KINDS = ("maf_affine", "maf_rqs", "coupling_rqs", "actnorm", "permute", "tanh", "logit",
         "affine_fixed", "log", "cond_scale")
SCALE_KINDS = ("exp", "exp_tanh", "shift")
COND_MAP_NAMES = {0: "identity", 1: "log10", 2: "ln"}


# ---- reading the file ---------------------------------------------------------------------------
def _attr(group, name, default=None):
    v = group.attrs.get(name, default)
    if isinstance(v, np.ndarray) and v.shape in ((1,), ()):
        v = v.reshape(-1)[0]
    if isinstance(v, (bytes, np.bytes_)):
        v = v.decode()
    return v


def read_model_file(path):
    """The model file as plain Python: dict(dim, cond_dim, n_params, real_type, params (float64),
    bijectors=[dict of attributes, plus perm / shift / scale arrays], cond_map, cond_shift,
    cond_scale, provenance=dict)."""
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
        nb = int(_attr(m, "n_bijectors"))
        g = m["bijectors"]
        bij = []
        for k in range(nb):
            name = f"{k:03d}"
            if name not in g:
                raise ValueError(f"{path}: /model/bijectors/{name} is missing (n_bijectors = {nb})")
            b = g[name]
            d = {a: _attr(b, a) for a in b.attrs.keys()}
            for ds, typ in (("perm", np.int64), ("shift", np.float64), ("scale", np.float64)):
                if ds in b:
                    d[ds] = np.asarray(b[ds][...], dtype=typ).reshape(-1)
            bij.append(d)
        out["bijectors"] = bij
        C = out["cond_dim"]
        out["cond_map"], out["cond_shift"], out["cond_scale"] = np.zeros(C, np.int64), np.zeros(C), np.ones(C)
        if "condition" in m:
            cg = m["condition"]
            if "map" in cg:
                out["cond_map"] = np.asarray(cg["map"][...], np.int64).reshape(-1)
            if "shift" in cg:
                out["cond_shift"] = np.asarray(cg["shift"][...], np.float64).reshape(-1)
            if "scale" in cg:
                out["cond_scale"] = np.asarray(cg["scale"][...], np.float64).reshape(-1)
        out["provenance"] = ({a: _attr(f["provenance"], a) for a in f["provenance"].attrs.keys()}
                             if "provenance" in f else {})
        return out


# ---- numerics shared by the bijectors -----------------------------------------------------------
def _softplus(u):
    """log(1 + e^u) without torch's threshold switch (cnflow: max(u, 0) + log1p(e^-|u|))."""
    return torch.clamp(u, min=0) + torch.log1p(torch.exp(-torch.abs(u)))


def _log1m_tanh2(z):
    """log(1 - tanh(z)^2) = 2 (log 2 - |z| - softplus(-2|z|)), finite for any z."""
    a = torch.abs(z)
    return 2.0 * (math.log(2.0) - a - torch.log1p(torch.exp(-2.0 * a)))


def _check_domain(ok, what, x):
    if not bool(torch.all(ok)):
        i, j = [int(v) for v in torch.nonzero(~ok)[0]]
        raise ValueError(f"cnflow_torch: {what}: input row {i} column {j} = {float(x[i, j]):g} "
                         f"is outside the bijector's domain")


def rqs(v, theta, K, B, min_w, min_h, min_d, inverse=False):
    """Elementwise rational-quadratic spline with identity tails outside [-B, B].
    v (...), theta (..., 3K-1).  Returns (out, log|d out / d v|) of the density direction
    (inverse=False, v = x) or of the sampling direction (inverse=True, v = z)."""
    uw, uh, ud = theta[..., :K], theta[..., K:2 * K], theta[..., 2 * K:]

    def knots(u, mn):
        sizes = mn + (1.0 - K * mn) * torch.softmax(u, dim=-1)
        inner = 2.0 * B * torch.cumsum(sizes, dim=-1)[..., :K - 1] - B
        edge = torch.full_like(inner[..., :1], B)
        return torch.cat([-edge, inner, edge], dim=-1)  # (..., K+1), endpoints exact

    cw, ch = knots(uw, min_w), knots(uh, min_h)
    one = torch.ones_like(ud[..., :1])
    deriv = torch.cat([one, min_d + _softplus(ud), one], dim=-1)
    inside = (v >= -B) & (v <= B)
    # evaluate at the clamped value and select afterwards: the discarded branch stays finite,
    # so the tail elements get exact zero gradients instead of NaN * 0
    vc = torch.clamp(v, -B, B)
    ref = ch if inverse else cw
    k = (ref[..., 1:K] <= vc.unsqueeze(-1)).sum(dim=-1, keepdim=True)  # bin index
    xk, xk1 = cw.gather(-1, k).squeeze(-1), cw.gather(-1, k + 1).squeeze(-1)
    yk, yk1 = ch.gather(-1, k).squeeze(-1), ch.gather(-1, k + 1).squeeze(-1)
    dk, dk1 = deriv.gather(-1, k).squeeze(-1), deriv.gather(-1, k + 1).squeeze(-1)
    wk, hk = xk1 - xk, yk1 - yk
    s = hk / wk
    c2 = dk + dk1 - 2.0 * s
    if not inverse:
        t = (vc - xk) / wk
        t1m = t * (1.0 - t)
        den = s + c2 * t1m
        out = yk + hk * (s * t * t + dk * t1m) / den
        dnum = s * s * (dk1 * t * t + 2.0 * s * t1m + dk * (1.0 - t) ** 2)
        lad = torch.log(dnum) - 2.0 * torch.log(den)
    else:
        dy = vc - yk
        a = hk * (s - dk) + dy * c2
        b = hk * dk - dy * c2
        c = -s * dy
        disc = torch.clamp(b * b - 4.0 * a * c, min=0.0)
        # the root (-b + sqrt(disc)) / 2a in its cancellation-free form (finite as a -> 0)
        t = torch.clamp(2.0 * c / (-b - torch.sqrt(disc)), 0.0, 1.0)
        t1m = t * (1.0 - t)
        den = s + c2 * t1m
        out = xk + t * wk
        dnum = s * s * (dk1 * t * t + 2.0 * s * t1m + dk * (1.0 - t) ** 2)
        lad = 2.0 * torch.log(den) - torch.log(dnum)
    return torch.where(inside, out, v), torch.where(inside, lad, torch.zeros_like(lad))


# ---- bijectors ----------------------------------------------------------------------------------
class Bijector(torch.nn.Module):
    """forward(x, c) -> (z, log|det dz/dx|) (density direction); inverse(z, c) -> (x,
    log|det dx/dz|) (sampling direction).  c is the TRANSFORMED condition c' (n, C)."""
    n_params = 0
    param_offset = 0

    def __init__(self, spec, D, C):
        super().__init__()
        self.spec, self.D, self.C = spec, D, C
        self.kind = str(spec["kind"])

    def _own_params(self, flat, dtype):
        self.param_offset = int(self.spec.get("param_offset", 0))
        n = int(self.spec.get("n_params", 0))
        if n != self.n_params:
            raise ValueError(f"cnflow_torch: {self.kind}: the file says n_params = {n}, the layout "
                             f"of flow.h gives {self.n_params}")
        sl = flat[self.param_offset:self.param_offset + n]
        if sl.size != n:
            raise ValueError(f"cnflow_torch: {self.kind}: slice [{self.param_offset}, "
                             f"{self.param_offset + n}) is outside /model/params")
        self.flat = torch.nn.Parameter(torch.as_tensor(sl.copy(), dtype=dtype))


def _take(flat, o, *shape):
    n = int(np.prod(shape))
    return flat[o:o + n].view(*shape), o + n


class MADE(torch.nn.Module):
    """cnflow's conditional MADE on a flat parameter slice (layout in the module docstring)."""

    def __init__(self, D, C, H, L, P):
        super().__init__()
        self.D, self.C, self.H, self.L, self.P = D, C, H, L, P
        period, lo = max(1, D - 1), min(1, D - 1)
        deg = np.sort(np.arange(H) % period + lo, kind="stable")  # sorted hidden degrees
        din = np.arange(1, D + 1)                                  # input degrees
        dout = np.repeat(np.arange(1, D + 1), P)                   # output row d*P + p: degree d+1
        self.register_buffer("m0", torch.as_tensor((deg[:, None] >= din[None, :]).astype(np.float64)))
        self.register_buffer("mh", torch.as_tensor((deg[:, None] >= deg[None, :]).astype(np.float64)))
        self.register_buffer("mo", torch.as_tensor((dout[:, None] > deg[None, :]).astype(np.float64)))
        self.degrees = deg
        self.n_params = H * (D + C) + H + (L - 1) * (H * H + H) + D * P * H + D * P + D * P * C

    def layers(self, flat):
        """Views (W0, b0, [(W_l, b_l)], Wout, bout, Wc) of the slice, in flow.h order."""
        D, C, H, L, P = self.D, self.C, self.H, self.L, self.P
        W0, o = _take(flat, 0, H, D + C)
        b0, o = _take(flat, o, H)
        hid = []
        for _ in range(1, L):
            W, o = _take(flat, o, H, H)
            b, o = _take(flat, o, H)
            hid.append((W, b))
        Wout, o = _take(flat, o, D * P, H)
        bout, o = _take(flat, o, D * P)
        Wc, o = _take(flat, o, D * P, C)
        assert o == self.n_params
        return W0, b0, hid, Wout, bout, Wc

    def forward(self, flat, x, c):
        """(n, D, P): the P parameters of every dimension, dimension d from x_<d and c."""
        D, C = self.D, self.C
        W0, b0, hid, Wout, bout, Wc = self.layers(flat)
        m0, mh, mo = (m.to(flat.dtype) for m in (self.m0, self.mh, self.mo))
        pre = x @ (W0[:, :D] * m0).T + b0
        if C > 0:
            pre = pre + c @ W0[:, D:].T
        h = torch.relu(pre)
        for W, b in hid:
            h = torch.relu(h @ (W * mh).T + b)
        out = h @ (Wout * mo).T + bout
        if C > 0:
            out = out + c @ Wc.T  # direct condition weights: every dimension depends on c
        return out.view(x.shape[0], D, self.P)


class MAF(Bijector):
    """maf_affine / maf_rqs: z_d = f(x_d; MADE(x_<d, c)_d)."""

    def __init__(self, spec, D, C, flat, dtype):
        super().__init__(spec, D, C)
        self.rqs = self.kind == "maf_rqs"
        if self.rqs:
            self.K = int(spec["bins"])
            self.B = float(spec["tail_bound"])
            self.min_w, self.min_h, self.min_d = (float(spec[a]) for a in
                                                  ("min_bin_width", "min_bin_height", "min_derivative"))
            P = 3 * self.K - 1
        else:
            self.scale_kind = str(spec.get("scale_kind", "exp"))
            if self.scale_kind not in SCALE_KINDS:
                raise ValueError(f"cnflow_torch: maf_affine: unknown scale_kind '{self.scale_kind}'")
            P = 1 if self.scale_kind == "shift" else 2  # shift-only: m alone, no log-scale output
        self.made = MADE(D, C, int(spec["hidden"]), int(spec["n_hidden"]), P)
        self.n_params = self.made.n_params
        self._own_params(flat, dtype)

    def _element(self, v, th, inverse):
        if self.rqs:
            return rqs(v, th, self.K, self.B, self.min_w, self.min_h, self.min_d, inverse)
        if self.scale_kind == "shift":  # z = x - m, unit Jacobian
            zero = torch.zeros_like(v)
            return (v + th[..., 0], zero) if inverse else (v - th[..., 0], zero)
        s = torch.tanh(th[..., 1]) if self.scale_kind == "exp_tanh" else th[..., 1]
        if inverse:
            return v * torch.exp(s) + th[..., 0], s
        return (v - th[..., 0]) * torch.exp(-s), -s

    def forward(self, x, c):
        z, lad = self._element(x, self.made(self.flat, x, c), inverse=False)
        return z, lad.sum(-1)

    def inverse(self, z, c):
        cols, lds = [], []
        zero = torch.zeros_like(z[:, :1])
        for d in range(self.D):
            # x_{>=d} are unknown: zeros (the masks make dimension d independent of them)
            xs = torch.cat(cols + [zero.expand(-1, self.D - d)], dim=1)
            th = self.made(self.flat, xs, c)[:, d]
            xd, ld = self._element(z[:, d], th, inverse=True)
            cols.append(xd.unsqueeze(1))
            lds.append(ld)
        return torch.cat(cols, dim=1), torch.stack(lds, dim=1).sum(-1)


class CouplingRQS(Bijector):
    """coupling_rqs: x1 passes, x2 through an RQS with theta = MLP([x1, c])."""

    def __init__(self, spec, D, C, flat, dtype):
        super().__init__(spec, D, C)
        self.K, self.B = int(spec["bins"]), float(spec["tail_bound"])
        self.min_w, self.min_h, self.min_d = (float(spec[a]) for a in
                                              ("min_bin_width", "min_bin_height", "min_derivative"))
        self.tails = str(spec.get("tails", "event"))
        if self.tails not in ("event", "element"):
            raise ValueError(f"cnflow_torch: coupling_rqs: unknown tails '{self.tails}'")
        self.d1, self.d2 = (D + 1) // 2, D // 2
        self.P = 3 * self.K - 1
        H, L = int(spec["hidden"]), int(spec["n_hidden"])
        n_in, n_out = self.d1 + C, self.d2 * self.P
        self.shapes = [(H, n_in)] + [(H, H)] * (L - 1) + [(n_out, H)]
        self.n_params = sum(r * (k + 1) for r, k in self.shapes)
        self._own_params(flat, dtype)

    def theta(self, v1, c):
        h = torch.cat([v1, c], dim=1) if self.C > 0 else v1
        o = 0
        for i, (r, k) in enumerate(self.shapes):
            W, o = _take(self.flat, o, r, k)
            b, o = _take(self.flat, o, r)
            h = h @ W.T + b
            if i < len(self.shapes) - 1:
                h = F.leaky_relu(h, 0.01)
        return h.view(h.shape[0], self.d2, self.P)

    def _transform(self, v, c, inverse):
        v1, v2 = v[:, :self.d1], v[:, self.d1:]
        t2, lad = rqs(v2, self.theta(v1, c), self.K, self.B, self.min_w, self.min_h, self.min_d,
                      inverse)
        ld = lad.sum(-1)
        if self.tails == "event":
            # CaloINN: an event with any |v2_j| > B keeps its whole x2 half, log-det 0
            use = torch.all(torch.abs(v2) <= self.B, dim=1)
            t2 = torch.where(use.unsqueeze(1), t2, v2)
            ld = torch.where(use, ld, torch.zeros_like(ld))
        return torch.cat([v1, t2], dim=1), ld

    def forward(self, x, c):
        return self._transform(x, c, inverse=False)

    def inverse(self, z, c):
        return self._transform(z, c, inverse=True)



class ActNorm(Bijector):
    def __init__(self, spec, D, C, flat, dtype):
        super().__init__(spec, D, C)
        self.n_params = 2 * D
        self._own_params(flat, dtype)

    def forward(self, x, c):
        loc, ls = self.flat[:self.D], self.flat[self.D:]
        return (x - loc) * torch.exp(-ls), (-ls.sum()).expand(x.shape[0])

    def inverse(self, z, c):
        loc, ls = self.flat[:self.D], self.flat[self.D:]
        return z * torch.exp(ls) + loc, ls.sum().expand(z.shape[0])


class Permute(Bijector):
    def __init__(self, spec, D, C):
        super().__init__(spec, D, C)
        perm = np.asarray(spec["perm"], np.int64)
        if sorted(perm.tolist()) != list(range(D)):
            raise ValueError(f"cnflow_torch: permute: {perm.tolist()} is not a permutation of 0..{D - 1}")
        self.register_buffer("perm", torch.as_tensor(perm))
        self.register_buffer("inv", torch.argsort(self.perm))

    def forward(self, x, c):
        return x[:, self.perm], torch.zeros_like(x[:, 0])

    def inverse(self, z, c):
        return z[:, self.inv], torch.zeros_like(z[:, 0])


class Tanh(Bijector):
    """density z = atanh(x), data in (-1, 1)."""

    def forward(self, x, c):
        _check_domain(torch.abs(x) < 1, "tanh", x)
        return torch.atanh(x), -torch.log1p(-x * x).sum(-1)

    def inverse(self, z, c):
        # cnflow keeps samples inside the open interval, where their density exists
        below = float(np.nextafter(np.array(1.0, dtype=_np_dtype(z.dtype)), 0))
        return torch.clamp(torch.tanh(z), -below, below), _log1m_tanh2(z).sum(-1)


class Logit(Bijector):
    """density z = logit(alpha + (1 - 2 alpha) x)."""

    def __init__(self, spec, D, C):
        super().__init__(spec, D, C)
        self.alpha = float(spec.get("alpha", 0.0))
        self.s = 1.0 - 2.0 * self.alpha

    def forward(self, x, c):
        u = self.alpha + self.s * x
        _check_domain((u > 0) & (u < 1), f"logit (alpha {self.alpha:g})", x)
        lu, l1u = torch.log(u), torch.log1p(-u)
        return lu - l1u, (math.log(self.s) - lu - l1u).sum(-1)

    def inverse(self, z, c):
        return (torch.sigmoid(z) - self.alpha) / self.s, \
            (-_softplus(-z) - _softplus(z) - math.log(self.s)).sum(-1)


class AffineFixed(Bijector):
    """density z = (x - shift) / scale."""

    def __init__(self, spec, D, C, dtype):
        super().__init__(spec, D, C)
        shift, scale = np.asarray(spec["shift"], np.float64), np.asarray(spec["scale"], np.float64)
        if shift.size != D or scale.size != D or np.any(scale == 0):
            raise ValueError("cnflow_torch: affine_fixed: need shift and non-zero scale of length dim")
        self.register_buffer("shift", torch.as_tensor(shift, dtype=dtype))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=dtype))
        self.log_abs = float(np.sum(np.log(np.abs(scale))))

    def forward(self, x, c):
        return (x - self.shift) / self.scale, torch.full_like(x[:, 0], -self.log_abs)

    def inverse(self, z, c):
        return z * self.scale + self.shift, torch.full_like(z[:, 0], self.log_abs)


class Log(Bijector):
    """density z = ln(x + eps), log|dz/dx| = -ln(x + eps)."""

    def __init__(self, spec, D, C):
        super().__init__(spec, D, C)
        self.eps = float(spec.get("eps", 0.0))

    def forward(self, x, c):
        v = x + self.eps
        _check_domain((v > 0) & torch.isfinite(v), f"log (eps {self.eps:g})", x)
        lv = torch.log(v)
        return lv, -lv.sum(-1)

    def inverse(self, z, c):
        return torch.exp(z) - self.eps, z.sum(-1)


class CondScale(Bijector):
    """density z = x exp(-s), s = cond_a c'[cond_index] + cond_b, log|det| = -D s."""

    def __init__(self, spec, D, C):
        super().__init__(spec, D, C)
        self.j = int(spec.get("cond_index", 0))
        if not 0 <= self.j < C:
            raise ValueError(f"cnflow_torch: cond_scale: cond_index {self.j} outside [0, {C})")
        self.a, self.b = float(spec.get("cond_a", 0.0)), float(spec.get("cond_b", 0.0))

    def forward(self, x, c):
        s = self.a * c[:, self.j] + self.b
        return x * torch.exp(-s).unsqueeze(1), -self.D * s

    def inverse(self, z, c):
        s = self.a * c[:, self.j] + self.b
        return z * torch.exp(s).unsqueeze(1), self.D * s


def _np_dtype(dt):
    return {torch.float64: np.float64, torch.float32: np.float32}.get(dt, np.float64)


def make_bijector(spec, D, C, flat, dtype):
    kind = str(spec["kind"])
    if kind in ("maf_affine", "maf_rqs"):
        return MAF(spec, D, C, flat, dtype)
    if kind == "coupling_rqs":
        return CouplingRQS(spec, D, C, flat, dtype)
    if kind == "actnorm":
        return ActNorm(spec, D, C, flat, dtype)
    if kind == "permute":
        return Permute(spec, D, C)
    if kind == "tanh":
        return Tanh(spec, D, C)
    if kind == "logit":
        return Logit(spec, D, C)
    if kind == "affine_fixed":
        return AffineFixed(spec, D, C, dtype)
    if kind == "log":
        return Log(spec, D, C)
    if kind == "cond_scale":
        return CondScale(spec, D, C)
    raise ValueError(f"cnflow_torch: unknown bijector kind '{kind}' (known: {', '.join(KINDS)})")


# ---- the flow -----------------------------------------------------------------------------------
class CnflowTorchModel(torch.nn.Module):
    """A cnflow model: condition transform, the bijector chain (density direction), N(0, I)."""

    def __init__(self, info, dtype=torch.float64):
        super().__init__()
        self.info = info
        self.D, self.C = info["dim"], info["cond_dim"]
        self.dtype = dtype
        flat = np.asarray(info["params"], np.float64)
        self.bijectors = torch.nn.ModuleList(
            make_bijector(s, self.D, self.C, flat, dtype) for s in info["bijectors"])
        # the slices must tile /model/params exactly (what the offsets promise)
        o = 0
        for k, b in enumerate(self.bijectors):
            if b.n_params and b.param_offset != o:
                raise ValueError(f"cnflow_torch: bijector {k} ({b.kind}) starts at {b.param_offset}, "
                                 f"expected {o}")
            o += b.n_params
        if o != info["n_params"]:
            raise ValueError(f"cnflow_torch: the bijectors own {o} parameters, n_params = {info['n_params']}")
        self.cond_map = [int(v) for v in info["cond_map"]]
        if any(m not in COND_MAP_NAMES for m in self.cond_map) or len(self.cond_map) != self.C:
            raise ValueError(f"cnflow_torch: condition map {self.cond_map} (need {self.C} of 0, 1, 2)")
        self.register_buffer("cond_shift", torch.as_tensor(info["cond_shift"], dtype=dtype))
        self.register_buffer("cond_scale", torch.as_tensor(info["cond_scale"], dtype=dtype))

    # ---- parameters in cnflow's order ----------------------------------------------------------
    def _trainable(self):
        return [b for b in self.bijectors if b.n_params]

    def params_to_cnflow(self):
        """Every parameter in /model/params order (numpy float64)."""
        parts = [b.flat.detach().cpu().to(torch.float64).numpy() for b in self._trainable()]
        return np.concatenate(parts) if parts else np.zeros(0)

    def grads_to_cnflow(self):
        """The .grad of every parameter (after backward()) in /model/params order; 0 where none."""
        out = np.zeros(self.info["n_params"])
        for b in self._trainable():
            if b.flat.grad is not None:
                out[b.param_offset:b.param_offset + b.n_params] = b.flat.grad.detach().cpu().numpy()
        return out

    @torch.no_grad()
    def params_from_cnflow(self, flat):
        flat = np.asarray(flat, np.float64)
        for b in self._trainable():
            b.flat.copy_(torch.as_tensor(flat[b.param_offset:b.param_offset + b.n_params]))

    # ---- conditions ------------------------------------------------------------------------------
    def transform_condition(self, c):
        """c' = (map(c) - shift) * scale per column, map identity / log10 / ln (differentiable)."""
        if self.C == 0:
            return c
        if c.dim() != 2 or c.shape[1] != self.C:
            raise ValueError(f"cnflow_torch: conditions of shape {tuple(c.shape)}, need (n, {self.C})")
        cols = []
        for j, m in enumerate(self.cond_map):
            v = c[:, j]
            if m != 0:
                _check_domain((v > 0).unsqueeze(1), f"condition map {COND_MAP_NAMES[m]}", v.unsqueeze(1))
                v = torch.log10(v) if m == 1 else torch.log(v)
            cols.append(v)
        return (torch.stack(cols, dim=1) - self.cond_shift) * self.cond_scale

    def _cond(self, c, n, like):
        if self.C == 0:
            return like.new_zeros(n, 0)
        return self.transform_condition(c)

    # ---- densities -------------------------------------------------------------------------------
    def forward(self, x, c):
        """Density direction: z (n, D) and log|det dz/dx| (n) for raw conditions c."""
        if x.dim() != 2 or x.shape[1] != self.D:
            raise ValueError(f"cnflow_torch: x of shape {tuple(x.shape)}, need (n, {self.D})")
        cc = self._cond(c, x.shape[0], x)
        logdet = torch.zeros_like(x[:, 0])
        for b in self.bijectors:
            x, ld = b(x, cc)
            logdet = logdet + ld
        return x, logdet

    def log_prob(self, x, c):
        """log p(x | c) with raw conditions c (as cnflow's cnf_flow_log_prob); differentiable in
        the parameters, x and c."""
        z, logdet = self.forward(x, c)
        return -0.5 * (z * z).sum(-1) - 0.5 * self.D * LOG_2PI + logdet

    @torch.no_grad()
    def inverse(self, z, c):
        """Sampling direction from given latents z: x and log|det dx/dz| (cnf_flow_inverse)."""
        cc = self._cond(c, z.shape[0], z)
        logdet = torch.zeros_like(z[:, 0])
        for b in reversed(self.bijectors):
            z, ld = b.inverse(z, cc)
            logdet = logdet + ld
        return z, logdet

    @torch.no_grad()
    def sample(self, c, generator=None):
        """x ~ p(x | c) and log p(x | c).  The latents come from torch's generator, so the samples
        differ from cnf_flow_sample's (Philox streams); inverse() with the same z agrees."""
        z = torch.randn(c.shape[0], self.D, dtype=self.dtype, device=c.device, generator=generator)
        x, logdet = self.inverse(z, c)
        return x, -0.5 * (z * z).sum(-1) - 0.5 * self.D * LOG_2PI - logdet


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
