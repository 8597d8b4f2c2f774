"""Site adapter: reading and patching activations on GPT-2, NeoX, Llama/Gemma, BERT and
unknown nn.Modules. Every patch test also shows the patch *moves* the output, so a
hook that silently never fires cannot pass."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from causalspec.run.families import GenericFamily, TransformerFamily, base_prefix, resolve_family
from causalspec.run.hooks import patch, record
from causalspec.run.sites import (
    Intervention,
    SiteShapeError,
    SliceAccess,
    UnservableSite,
)
from causalspec.semantics.site_kinds import SiteAddress

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the fixtures live in tests/run/conftest.py (no package: not importable at run time)
    from conftest import TinyModel

ATOL = 1e-5
SEQ = 6
VOCAB = 100  # matches the tiny configs in conftest.py


def inputs(seed: int, batch: int = 2, seq: int = SEQ) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (batch, seq), generator=gen)


def logits(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits  # [batch, seq, vocab]


def all_positions(batch: int, seq: int) -> torch.Tensor:
    return torch.arange(seq).expand(batch, seq)  # [batch, seq]


def every_site(tm: TinyModel) -> list[SiteAddress]:
    """Every non-module site the family serves for this model's config, plus two module sites."""
    family = resolve_family(tm.model)
    assert isinstance(family, TransformerFamily)
    cfg = tm.model.config
    n_heads = cfg.num_attention_heads
    n_kv = getattr(cfg, "num_key_value_heads", None) or n_heads
    sites = [SiteAddress("embed"), SiteAddress("logits")]
    for layer in range(cfg.num_hidden_layers):
        for kind in ("resid.pre", "resid.mid", "resid.post", "attn.out", "mlp.out"):
            if kind != "resid.mid" or family.has_resid_mid(cfg):
                sites.append(SiteAddress(kind, layer))
        for part in ("q", "k", "v", "z", "result"):
            for head in range(n_kv if part in ("k", "v") else n_heads):
                sites.append(SiteAddress(f"head.{part}", layer, head))
    block = f"{base_prefix(tm.model)}{family.spec.layers}.1"
    sites += [SiteAddress("module", module_path=f"{block}.{family.spec.mlp_out}", module_io="output"),
              SiteAddress("module", module_path=block, module_io="input")]
    return sites


def count_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# ───────────────────────── addresses ─────────────────────────


def test_site_address_renders_spec_spelling_and_rejects_malformed() -> None:
    assert str(SiteAddress("resid.post", 3)) == "resid.post[3]"
    assert str(SiteAddress("head.z", 2, 1)) == "head[2.1].z"
    assert str(SiteAddress("module", module_path="layers.0", module_io="output")) == 'module "layers.0" output'
    assert str(SiteAddress("embed")) == "embed"
    for bad in (dict(kind="resid.post"), dict(kind="head.q", layer=0), dict(kind="embed", layer=0),
                dict(kind="module", module_path="x"), dict(kind="resid.pre", layer=-1), dict(kind="nope")):
        with pytest.raises(ValueError):
            SiteAddress(**bad)


def test_families_are_detected_from_model_type(tiny_models: dict[str, TinyModel]) -> None:
    names = {name: resolve_family(tm.model).name for name, tm in tiny_models.items()}
    assert names == {"gpt2": "gpt2", "neox-parallel": "gpt-neox", "neox-sequential": "gpt-neox",
                     "llama-gqa": "llama-family", "gemma": "llama-family", "bert": "bert"}
    assert isinstance(resolve_family(nn.Linear(2, 2)), GenericFamily)


# ───────────────────────── 1. identity patches, and real patches move the output ─────────────────────────


def test_self_patch_is_identity_and_source_patch_moves_output(tiny: TinyModel) -> None:
    model, family = tiny.model, resolve_family(tiny.model)
    base, source = inputs(0), inputs(1)
    sites = every_site(tiny)
    with torch.no_grad(), record(model, family, sites) as base_acts:
        base_logits = model(input_ids=base).logits
    with torch.no_grad(), record(model, family, sites) as source_acts:
        model(input_ids=source)
    positions = all_positions(*base.shape)
    for site in sites:
        own = Intervention(site, positions, base_acts[site])
        with torch.no_grad(), patch(model, family, [own]):
            out = model(input_ids=base).logits
        assert torch.allclose(out, base_logits, atol=1e-6), f"self-patch changed output at {site}"

        swap = Intervention(site, positions, source_acts[site])
        with torch.no_grad(), patch(model, family, [swap]), record(model, family, [site]) as seen:
            moved = model(input_ids=base).logits
        assert (moved - base_logits).abs().max() > 1e-4, f"patching {site} did not move the output"
        if site.kind != "head.result":  # result is written as a delta on o_proj; z (what a read sees) is untouched
            assert torch.allclose(seen[site], source_acts[site], atol=ATOL), f"{site}: read-after-write mismatch"


def test_head_patch_touches_only_its_slice(tiny: TinyModel) -> None:
    model, family = tiny.model, resolve_family(tiny.model)
    names = {module: name for name, module in model.named_modules()}
    base, source = inputs(0), inputs(1)
    positions = all_positions(*base.shape)
    for part, head in (("q", 1), ("k", 0), ("v", 0), ("z", 2)):
        site = SiteAddress(f"head.{part}", 1, head)
        access = family.locate(model, site)
        assert isinstance(access, SliceAccess)
        whole = SiteAddress("module", module_path=names[access.inner.module], module_io=access.inner.io)
        with torch.no_grad(), record(model, family, [site]) as src:
            model(input_ids=source)
        with torch.no_grad(), record(model, family, [whole]) as before:
            model(input_ids=base)
        with torch.no_grad(), patch(model, family, [Intervention(site, positions, src[site])]), \
                record(model, family, [whole]) as after:
            model(input_ids=base)
        x0, x1 = before[whole], after[whole]  # [batch, seq, total]
        cols = slice(access.start, access.start + access.width)
        assert torch.equal(x1[..., cols], src[site])
        keep = torch.ones(x0.shape[-1], dtype=torch.bool)
        keep[cols] = False
        assert torch.equal(x1[..., keep], x0[..., keep]), f"{site} leaked outside its slice"
        assert not torch.equal(x1[..., cols], x0[..., cols])


def test_subspace_patch_replaces_only_the_span(tiny: TinyModel) -> None:
    model, family = tiny.model, resolve_family(tiny.model)
    site = SiteAddress("resid.post", 0)
    base, source = inputs(0), inputs(1)
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(32, 3)).Q  # [d_model, 3], orthonormal columns
    with torch.no_grad(), record(model, family, [site]) as b:
        base_logits = model(input_ids=base).logits
    with torch.no_grad(), record(model, family, [site]) as s:
        model(input_ids=source)
    iv = Intervention(site, all_positions(*base.shape), s[site], basis=basis)
    with torch.no_grad(), patch(model, family, [iv]), record(model, family, [site]) as p:
        moved = model(input_ids=base).logits
    x, src, out = b[site], s[site], p[site]
    assert torch.allclose(out @ basis, src @ basis, atol=ATOL)
    outside = lambda t: t - (t @ basis) @ basis.T  # noqa: E731
    assert torch.allclose(outside(out), outside(x), atol=ATOL)
    assert (moved - base_logits).abs().max() > 1e-4
    with pytest.raises(ValueError, match="orthonormal"):
        Intervention(site, iv.positions, s[site], basis=2 * basis)


def test_read_write_patch_writes_through_its_own_map(tiny: TinyModel) -> None:
    """A (read, write) pair patches ((src − x) @ B) @ W: with W = B.T it is the plain subspace
    patch; the illusion check passes W = (P B).T to write only inside a span."""
    model, family = tiny.model, resolve_family(tiny.model)
    site = SiteAddress("resid.post", 0)
    base, source = inputs(0), inputs(1)
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(32, 2)).Q
    span = torch.linalg.qr(torch.randn(32, 5)).Q
    write = (span @ (span.T @ basis)).T  # [2, 32]: B projected onto span(span)
    with torch.no_grad(), record(model, family, [site]) as b:
        model(input_ids=base)
    with torch.no_grad(), record(model, family, [site]) as s:
        model(input_ids=source)
    pos = all_positions(*base.shape)

    def patched(basis_arg):
        iv = Intervention(site, pos, s[site], basis=basis_arg)
        with torch.no_grad(), patch(model, family, [iv]), record(model, family, [site]) as p:
            model(input_ids=base)
        return p[site]

    x, src = b[site], s[site]
    assert torch.allclose(patched((basis, basis.T)), patched(basis), atol=ATOL)
    out = patched((basis, write))
    assert torch.allclose(out, x + ((src - x) @ basis) @ write, atol=ATOL)
    change = out - x  # [batch, seq, width]
    assert (change - (change @ span) @ span.T).abs().max() < 1e-4  # the change lies in span(span)
    with pytest.raises(SiteShapeError, match="write map"):
        Intervention(site, pos, s[site], basis=(basis, basis))


# ───────────────────────── 2. full residual swap reproduces the source ─────────────────────────


def test_full_residual_swap_reproduces_source_logits(tiny: TinyModel) -> None:
    """resid.post[L] (and resid.pre / resid.mid, also full cuts of the stream) swapped at
    every position makes the base run compute the source's logits. For resid.mid this is
    what shows the write reaches the skip connection, not just the MLP's input."""
    model, family = tiny.model, resolve_family(tiny.model)
    base, source = inputs(0), inputs(1)
    base_logits = logits(model, base)
    kinds = ["resid.post", "resid.pre"] + (["resid.mid"] if family.has_resid_mid(model.config) else [])
    for layer in range(model.config.num_hidden_layers):
        for kind in kinds:
            site = SiteAddress(kind, layer)
            with torch.no_grad(), record(model, family, [site]) as s:
                source_logits = model(input_ids=source).logits
            with torch.no_grad(), patch(model, family, [Intervention(site, all_positions(*base.shape), s[site])]):
                out = model(input_ids=base).logits
            assert torch.allclose(out, source_logits, atol=ATOL), f"{site}"
            assert not torch.allclose(base_logits, source_logits, atol=1e-3)


# ───────────────────────── 3. heads add up to the attention output ─────────────────────────


def test_head_results_sum_to_attn_out(tiny: TinyModel) -> None:
    model, family = tiny.model, resolve_family(tiny.model)
    cfg = model.config
    for layer in range(cfg.num_hidden_layers):
        heads = [SiteAddress("head.result", layer, h) for h in range(cfg.num_attention_heads)]
        attn = SiteAddress("attn.out", layer)
        with torch.no_grad(), record(model, family, [*heads, attn]) as acts:
            model(input_ids=inputs(3))
        total = sum(acts[h] for h in heads)  # [batch, seq, d_model]
        bias = family.locate(model, heads[0]).o_proj.bias
        if bias is not None:
            total = total + bias
        assert total.shape == acts[attn].shape == (2, SEQ, cfg.hidden_size)
        assert torch.allclose(total, acts[attn], atol=ATOL)


# ───────────────────────── 4. right padding ─────────────────────────


def test_right_padded_batch_matches_examples_alone(tiny: TinyModel) -> None:
    model, family = tiny.model, resolve_family(tiny.model)
    lengths = (SEQ, 3)
    rows = [inputs(10 + i, batch=1, seq=n) for i, n in enumerate(lengths)]
    ids = torch.zeros(len(rows), SEQ, dtype=torch.long)
    mask = torch.zeros(len(rows), SEQ, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : row.shape[1]], mask[i, : row.shape[1]] = row[0], 1
    sites = [SiteAddress("resid.post", 0), SiteAddress("head.z", 1, 1)]
    last = torch.tensor([[n - 1] for n in lengths])  # [batch, 1]: each row's last real token
    values = torch.randn(len(rows), 1, model.config.hidden_size)  # [batch, 1, d_model]
    patch_site = SiteAddress("resid.mid" if resolve_family(model).has_resid_mid(model.config) else "resid.pre", 1)

    with torch.no_grad(), record(model, family, sites) as batch_acts:
        batch_out = model(input_ids=ids, attention_mask=mask).logits
    with torch.no_grad(), patch(model, family, [Intervention(patch_site, last, values)]):
        batch_patched = model(input_ids=ids, attention_mask=mask).logits
    for i, (row, n) in enumerate(zip(rows, lengths)):
        with torch.no_grad(), record(model, family, sites) as alone_acts:
            alone = model(input_ids=row).logits
        assert (batch_out[i, :n] - alone[0]).abs().max() < ATOL
        for site in sites:
            assert (batch_acts[site][i, :n] - alone_acts[site][0]).abs().max() < ATOL
        one = Intervention(patch_site, last[i : i + 1], values[i : i + 1])
        with torch.no_grad(), patch(model, family, [one]):
            alone_patched = model(input_ids=row).logits
        assert (batch_patched[i, :n] - alone_patched[0]).abs().max() < ATOL
        assert (alone_patched - alone).abs().max() > 1e-4


# ───────────────────────── 5. causality of a single-position patch ─────────────────────────


def test_single_position_patch_respects_causality(tiny_causal: TinyModel) -> None:
    model, family = tiny_causal.model, resolve_family(tiny_causal.model)
    base, source = inputs(0), inputs(1)
    p = 3
    # (site, reaches later positions): sites after the last attention layer are position-wise from there on
    cases = [(SiteAddress("embed"), True), (SiteAddress("resid.post", 0), True),
             (SiteAddress("head.v", 0, 0), True), (SiteAddress("head.result", 1, 0), False),
             (SiteAddress("attn.out", 1), False)]
    if family.has_resid_mid(model.config):
        cases += [(SiteAddress("resid.mid", 0), True), (SiteAddress("resid.mid", 1), False)]
    with torch.no_grad(), record(model, family, [site for site, _ in cases]) as s:
        model(input_ids=source)
    base_logits = logits(model, base)
    positions = torch.full((2, 1), p)  # [batch, 1]
    for site, reaches_later in cases:
        values = s[site][:, p : p + 1]  # [batch, 1, width]
        with torch.no_grad(), patch(model, family, [Intervention(site, positions, values)]):
            out = model(input_ids=base).logits
        assert torch.equal(out[:, :p], base_logits[:, :p]), f"{site} leaked backwards in time"
        changed = (out[:, p:] - base_logits[:, p:]).abs().amax(dim=-1)  # [batch, seq - p]
        assert bool((changed[:, 0] > 1e-4).all()), f"{site} did not move position {p}"
        if reaches_later:
            assert bool((changed[:, 1:] > 1e-5).all()), f"{site} did not move positions > {p}"
        else:
            assert torch.equal(out[:, p + 1 :], base_logits[:, p + 1 :]), f"{site} moved later positions"


def test_several_interventions_at_once(tiny_causal: TinyModel) -> None:
    model, family = tiny_causal.model, resolve_family(tiny_causal.model)
    base, source = inputs(0), inputs(1)
    a, b = SiteAddress("resid.post", 0), SiteAddress("head.z", 1, 0)
    with torch.no_grad(), record(model, family, [a, b]) as s:
        model(input_ids=source)
    pos_a, pos_b = torch.tensor([[1], [2]]), torch.tensor([[4, 5], [0, 5]])
    ivs = [Intervention(a, pos_a, s[a].gather(1, pos_a[..., None].expand(-1, -1, s[a].shape[-1]))),
           Intervention(b, pos_b, s[b].gather(1, pos_b[..., None].expand(-1, -1, s[b].shape[-1])))]
    with torch.no_grad(), patch(model, family, ivs), record(model, family, [a, b]) as seen:
        model(input_ids=base)
    for iv in ivs:
        got = seen[iv.site].gather(1, iv.positions[..., None].expand(-1, -1, iv.values.shape[-1]))
        assert torch.allclose(got, iv.values, atol=ATOL)


# ───────────────────────── 6. unservable sites, unknown families ─────────────────────────


def test_unservable_sites_list_what_is_available(tiny_models: dict[str, TinyModel]) -> None:
    neox = tiny_models["neox-parallel"].model
    fam = resolve_family(neox)
    with pytest.raises(UnservableSite) as err:
        fam.locate(neox, SiteAddress("resid.mid", 0))
    msg = str(err.value)
    assert "use_parallel_residual" in msg and "resid.pre[0..1]" in msg and "resid.mid[0..1]" not in msg
    assert "resid.mid[0..1]" in "\n".join(resolve_family(tiny_models["neox-sequential"].model)
                                          .available_sites(tiny_models["neox-sequential"].model.config))

    gpt2 = tiny_models["gpt2"].model
    for site, reason in ((SiteAddress("resid.post", 2), "layer 2 out of range"),
                         (SiteAddress("head.q", 0, 4), "head 4 out of range"),
                         (SiteAddress("module", module_path="transformer.h.0.mlpp", module_io="output"),
                          "did you mean 'transformer.h.0.mlp'")):
        with pytest.raises(UnservableSite, match=reason) as err:
            resolve_family(gpt2).locate(gpt2, site)
        assert "head[L.H].q|k|v|z|result  (L in 0..1, H in 0..3)" in str(err.value)

    llama = tiny_models["llama-gqa"].model
    fam = resolve_family(llama)
    fam.locate(llama, SiteAddress("head.q", 0, 3))
    fam.locate(llama, SiteAddress("head.v", 0, 1))
    with pytest.raises(UnservableSite, match="grouped-query") as err:
        fam.locate(llama, SiteAddress("head.k", 0, 2))
    assert "head[L.H].k|v  (L in 0..1, H in 0..1" in str(err.value)

    bare = tiny_models["gpt2"].model.transformer  # GPT2Model: no LM head
    with pytest.raises(UnservableSite, match="no LM head"):
        resolve_family(bare).locate(bare, SiteAddress("logits"))
    resolve_family(bare).locate(bare, SiteAddress("resid.post", 1))  # but its blocks are found without the prefix


class TinyMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(a, 8), nn.ReLU()) for a in (4, 8))
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def test_unknown_module_serves_module_sites_and_logits() -> None:
    torch.manual_seed(0)
    model = TinyMLP().eval()
    family = resolve_family(model)
    assert isinstance(family, GenericFamily)
    with pytest.raises(UnservableSite, match=r'module "<path>" input\|output') as err:
        family.locate(model, SiteAddress("resid.post", 0))
    assert "resid.post[0]" in str(err.value)

    h0 = SiteAddress("module", module_path="layers.0", module_io="output")
    h1_in = SiteAddress("module", module_path="layers.1", module_io="input")
    out = SiteAddress("logits")
    base, source = torch.randn(3, 4), torch.randn(3, 4)
    with torch.no_grad(), record(model, family, [h0, h1_in, out]) as b:
        base_out = model(base)
    assert torch.equal(b[h0], b[h1_in]) and torch.equal(b[out], base_out)
    with torch.no_grad(), record(model, family, [h0]) as s:
        source_out = model(source)
    # no sequence axis: positions=None, values shaped like the activation [batch, width]
    with torch.no_grad(), patch(model, family, [Intervention(h0, None, s[h0])]):
        assert torch.allclose(model(base), source_out, atol=ATOL)
    mask = torch.eye(8)[:, :4]  # subspace = first four units
    with torch.no_grad(), patch(model, family, [Intervention(h0, None, s[h0], basis=mask)]), \
            record(model, family, [h1_in]) as mixed:
        model(base)
    assert torch.equal(mixed[h1_in][:, :4], s[h0][:, :4]) and torch.equal(mixed[h1_in][:, 4:], b[h0][:, 4:])
    with torch.no_grad(), patch(model, family, [Intervention(out, None, torch.zeros(3, 2))]):
        assert torch.equal(model(base), torch.zeros(3, 2))
    positional = Intervention(h0, torch.zeros(3, 1, dtype=torch.long), s[h0][:, None])
    with pytest.raises(SiteShapeError, match="positional patch"):
        with torch.no_grad(), patch(model, family, [positional]):
            model(base)


# ───────────────────────── 7. hook hygiene ─────────────────────────


def test_hooks_are_removed_even_on_exceptions(tiny_models: dict[str, TinyModel]) -> None:
    tm = tiny_models["llama-gqa"]
    model, family = tm.model, resolve_family(tm.model)
    sites = every_site(tm)
    theirs = model.model.layers[0].register_forward_hook(lambda *a: None)  # someone else's hook
    before = count_hooks(model)
    base = inputs(0)
    with torch.no_grad(), record(model, family, sites) as acts:
        assert count_hooks(model) > before
        model(input_ids=base)
    assert count_hooks(model) == before

    ivs = [Intervention(s, all_positions(*base.shape), acts[s]) for s in sites]
    with pytest.raises(RuntimeError, match="boom"):
        with torch.no_grad(), patch(model, family, ivs):
            model(input_ids=base)
            raise RuntimeError("boom")
    assert count_hooks(model) == before

    bad = Intervention(SiteAddress("resid.post", 0), torch.tensor([[SEQ], [0]]), torch.zeros(2, 1, 32))
    with pytest.raises(SiteShapeError, match="out of range"):  # raised inside a hook mid-forward
        with torch.no_grad(), patch(model, family, [ivs[0], bad]):
            model(input_ids=base)
    assert count_hooks(model) == before

    missing = Intervention(SiteAddress("resid.post", 9), None, torch.zeros(2, SEQ, 32))
    with pytest.raises(UnservableSite):  # resolution fails before anything is installed
        with patch(model, family, [ivs[0], missing]):
            pass
    assert count_hooks(model) == before
    assert theirs.id in model.model.layers[0]._forward_hooks
    theirs.remove()


def test_intervention_shapes_are_checked() -> None:
    site = SiteAddress("resid.post", 0)
    with pytest.raises(SiteShapeError, match="LongTensor"):
        Intervention(site, torch.zeros(2, 1), torch.zeros(2, 1, 4))
    with pytest.raises(SiteShapeError, match="values must be"):
        Intervention(site, torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 4))
    with pytest.raises(SiteShapeError, match="twice"):
        Intervention(site, torch.tensor([[1, 1]]), torch.zeros(1, 2, 4))


# ───────────────────────── independent cross-checks of the tables ─────────────────────────
# Read-after-write tests cannot catch a table pointing at the wrong columns (read and write
# would agree on the wrong place), so these recompute sites from their definitions.


def test_z_recomputed_from_q_k_v(tiny: TinyModel) -> None:
    """z_h = softmax(rot(q_h) rot(k_g)^T * scale + mask) v_g with g = h // (n_heads / n_kv):
    catches a wrong fused layout (GPT-2 concatenated, NeoX interleaved) or GQA grouping."""
    model, family = tiny.model, resolve_family(tiny.model)
    cfg = model.config
    n_heads = cfg.num_attention_heads
    n_kv = getattr(cfg, "num_key_value_heads", None) or n_heads
    layer = 1
    sites = {(part, h): SiteAddress(f"head.{part}", layer, h) for part in "qkvz"
             for h in range(n_kv if part in "kv" else n_heads)}
    ids = inputs(5)
    with torch.no_grad(), record(model, family, list(sites.values())) as acts:
        model(input_ids=ids)
    q_module = family.locate(model, sites["q", 0]).inner.module
    names = {m: n for n, m in model.named_modules()}
    attention = model.get_submodule(names[q_module].rsplit(".", 1)[0])  # the module holding `scaling`
    base = model.get_submodule(base_prefix(model).rstrip(".")) if base_prefix(model) else model
    seq = ids.shape[1]
    for h in range(n_heads):
        g = h // (n_heads // n_kv)
        # each [batch, 1, seq, head_dim]
        q, k, v = (acts[sites[part, hh]][:, None] for part, hh in (("q", h), ("k", g), ("v", g)))
        if hasattr(base, "rotary_emb"):
            cos, sin = base.rotary_emb(q, torch.arange(seq)[None])
            q, k = sys.modules[type(model).__module__].apply_rotary_pos_emb(q, k, cos, sin)
        scores = q @ k.transpose(-1, -2) * attention.scaling  # [batch, 1, seq, seq]
        if tiny.causal:
            scores = scores.masked_fill(torch.ones(seq, seq, dtype=torch.bool).triu(1), float("-inf"))
        z = (scores.softmax(-1) @ v)[:, 0]  # [batch, seq, hd]
        assert torch.allclose(z, acts[sites["z", h]], atol=ATOL), f"head {h}: z does not follow from q, k, v"


def test_residual_stream_decomposes(tiny: TinyModel) -> None:
    """Pre-norm: mid = pre + attn.out, post = mid + mlp.out (parallel: post = pre + attn + mlp).
    BERT (post-LN): mid = LN_a(pre + attn.out), post = LN_o(mid + mlp.out)."""
    model, family = tiny.model, resolve_family(tiny.model)
    n_layers = model.config.num_hidden_layers
    for layer in range(n_layers):
        pre, post, attn, mlp = (SiteAddress(k, layer) for k in ("resid.pre", "resid.post", "attn.out", "mlp.out"))
        mid, nxt = SiteAddress("resid.mid", layer), SiteAddress("resid.pre", min(layer + 1, n_layers - 1))
        has_mid = family.has_resid_mid(model.config)
        with torch.no_grad(), record(model, family, [pre, post, attn, mlp, nxt, *([mid] if has_mid else [])]) as a:
            model(input_ids=inputs(6))
        if tiny.name == "bert":
            block = model.bert.encoder.layer[layer]
            assert torch.allclose(a[mid], block.attention.output.LayerNorm(a[pre] + a[attn]), atol=ATOL)
            assert torch.allclose(a[post], block.output.LayerNorm(a[mid] + a[mlp]), atol=ATOL)
        elif has_mid:
            assert torch.allclose(a[mid], a[pre] + a[attn], atol=ATOL)
            assert torch.allclose(a[post], a[mid] + a[mlp], atol=ATOL)
        else:
            assert torch.allclose(a[post], a[pre] + a[attn] + a[mlp], atol=ATOL)
        if layer + 1 < n_layers:
            assert torch.equal(a[post], a[nxt])


def test_embed_is_what_block_zero_reads(tiny_models: dict[str, TinyModel]) -> None:
    model = tiny_models["gpt2"].model
    family = resolve_family(model)
    ids = inputs(7)
    with torch.no_grad(), record(model, family, [SiteAddress("embed"), SiteAddress("resid.pre", 0)]) as a:
        model(input_ids=ids)
        expected = model.transformer.wte(ids) + model.transformer.wpe(torch.arange(ids.shape[1]))[None]
    assert torch.equal(a[SiteAddress("embed")], a[SiteAddress("resid.pre", 0)])
    assert torch.allclose(a[SiteAddress("embed")], expected, atol=ATOL)
