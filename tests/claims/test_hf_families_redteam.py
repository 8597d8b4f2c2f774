"""Red-team ground truth for alignment checks on GPT-NeoX and Llama (GQA) networks with hand-set
weights, against an independent interchange computed here with plain forward hooks.

Why: the hidden ground truth includes non-GPT-2 Hugging Face architectures, where a site sits at
another module (parallel residual, RMSNorm, grouped-query attention, rotary positions). These tests
pin (1) the verdicts on a network whose mechanism is known exactly and (2) the tool's IIA, kept and
moved counts against a reference that shares no code with causalspec's engine, adapter, padding
or position resolution: each pair is run alone (no padding), the source's activation is read
with a forward hook and written into the base's forward with another, and the answer is the
argmax over the answer tokens at the last token.

The network (`build_net`): the token embedding is one-hot (token id t -> dimension t), so every
norm is a fixed scaling. Layer 0's attention is uniform (queries and keys zero, so rotary does
nothing); the value head that reads names (`NAME_READ`) writes through query head 1 into the
`ANS` dimensions; the value head that reads colours writes through query head 3 into `JUNK`
(read by nothing). Query head 0 reads the same values as head 1 (with GQA it *shares* head 1's
key/value head) but the out-projection drops it: it carries A, yet no patch there moves the
output. MLP 0 writes nothing; MLP 1 copies `ANS` into `ANS2` (linearly: a constant gate on
Llama, a large bias on NeoX), and only `ANS2` is read by the unembedding. Layer 1's attention
writes nothing. "Annabel" is two tokens (`Anna`, `##bel`); only `##bel` carries the name, so
prompts differ in length and `slot(A).first` points at a token that carries nothing. A tiny
read of the last token (`then`) breaks ties (towards Mary) when a patch removes every name.

`noise > 0` adds seeded Gaussian noise to every weight (queries and keys included, so attention
is no longer uniform and rotary positions matter): the answers and the IIA become partial, and
only the equality with the reference is asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.compile.plan import compile_check
from causalspec.semantics.analyse import load_text
from causalspec.testing.tiny import build_word_tokenizer, single_thread, tiny_config

NAMES = ["Mary", "John", "Tom", "Annabel"]
COLORS = ["red", "blue", "green", "pink"]
WORDS = "the saw then".split() + ["Mary", "John", "Tom", "Anna", "##bel"] + COLORS
PROMPT = "the {A} saw {B} then"
D, HEADS, HD = 64, 4, 16
ANS, ANS2, JUNK = 40, 48, 44  # first dimension of each 4-dim block
NAME_READ = {"Mary": 0, "John": 1, "Tom": 2, "##bel": 3}  # token -> name index read by the value head
ANSWER_TOKENS = ["Mary", "John", "Tom", "Anna"]  # first token of " {answer}" per name
LLAMA_LIKE = ("llama", "gemma", "qwen2", "mistral")  # model types laid out as Llama (model.layers.N.self_attn.*_proj)
KINDS = {
    "llama-gqa": ("llama", dict(num_key_value_heads=2, mlp_bias=True)),
    "neox-parallel": ("neox", dict(use_parallel_residual=True)),
    "neox-sequential": ("neox", dict(use_parallel_residual=False)),
}


def build_net(folder: Path, family: str, noise: float = 0.0, seed: int = 0, qk: float = 0.0) -> Path:
    from transformers import AutoModelForCausalLM

    kind, extra = KINDS[family]
    tok = build_word_tokenizer(WORDS, add_bos=(kind == "llama"))
    vocab = tok.get_vocab()
    assert len(vocab) < ANS
    cfg = tiny_config(kind, len(vocab), hidden_size=D, num_attention_heads=HEADS, intermediate_size=64,
                      max_position_embeddings=32, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, tie_word_embeddings=False, **extra)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg).eval()
    kv = getattr(cfg, "num_key_value_heads", HEADS)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", "layernorm.weight", "final_layer_norm.weight")):
                p.fill_(1.0)
        base = model.model if kind == "llama" else model.gpt_neox
        base.embed_tokens.weight.copy_(torch.eye(len(vocab), D)) if kind == "llama" else \
            base.embed_in.weight.copy_(torch.eye(len(vocab), D))
        names_v = torch.zeros(HD, D)  # value head reading names -> v dims 0..3
        for t, j in NAME_READ.items():
            names_v[j, vocab[t]] = 4.0
        colors_v = torch.zeros(HD, D)
        for j, c in enumerate(COLORS):
            colors_v[j, vocab[c]] = 4.0
        out = torch.zeros(D, HEADS * HD)  # o_proj weight [d_model, heads * head_dim]
        for j in range(4):
            out[ANS + j, 1 * HD + j] = 1.0  # query head 1 -> ANS
            out[JUNK + j, 3 * HD + j] = 1.0  # query head 3 -> JUNK
        layer0, layer1 = base.layers[0], base.layers[1]
        if kind == "llama":
            assert kv == 2  # kv head 0 (query heads 0, 1): names; kv head 1 (query heads 2, 3): colours
            layer0.self_attn.v_proj.weight.copy_(torch.cat([names_v, colors_v]))
            layer0.self_attn.o_proj.weight.copy_(out)
            mlp = layer1.mlp  # down(silu(gate) * up): gate = bias 10 (a constant), up reads ANS
            mlp.gate_proj.bias.fill_(10.0)
            gain = float(torch.nn.functional.silu(torch.tensor(10.0)))
            for j in range(4):
                mlp.up_proj.weight[j, ANS + j] = 1.0
                mlp.down_proj.weight[ANS2 + j, j] = 1.0 / gain
        else:  # NeoX: fused interleaved [q_h k_h v_h] per head; heads 0 and 1 read names, 2 and 3 colours
            qkv = layer0.attention.query_key_value.weight  # [3 * heads * hd, d]
            for h in range(HEADS):
                qkv[(3 * h + 2) * HD:(3 * h + 3) * HD] = names_v if h < 2 else colors_v
            layer0.attention.dense.weight.copy_(out)
            mlp = layer1.mlp  # dense_4h_to_h(gelu(dense_h_to_4h)): a bias of 10 keeps gelu linear
            for j in range(4):
                mlp.dense_h_to_4h.weight[j, ANS + j] = 1.0
                mlp.dense_h_to_4h.bias[j] = 10.0
                mlp.dense_4h_to_h.weight[ANS2 + j, j] = 1.0
                mlp.dense_4h_to_h.bias[ANS2 + j] = -10.0
        head = model.lm_head.weight
        for j, t in enumerate(ANSWER_TOKENS):
            head[vocab[t], ANS2 + j] = 8.0
            head[vocab[t], vocab["then"]] = 0.01 * (4 - j)  # ties go to Mary
        if noise:
            gen = torch.Generator().manual_seed(seed + 1)
            for p in model.parameters():
                p.add_(noise * torch.randn(p.shape, generator=gen))
        if qk:  # sharp, position-dependent attention in layer 0 (rotary matters)
            gen = torch.Generator().manual_seed(seed + 2)
            if kind == "llama":
                for proj in (layer0.self_attn.q_proj, layer0.self_attn.k_proj):
                    proj.weight.add_(qk * torch.randn(proj.weight.shape, generator=gen))
            else:
                qkv = layer0.attention.query_key_value.weight
                for h in range(HEADS):
                    rows = slice(3 * h * HD, (3 * h + 2) * HD)
                    qkv[rows] += qk * torch.randn(qkv[rows].shape, generator=gen)
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


SPEC = """
model M {{
  domain Name = enum {{{names}}}
  domain Color = enum {{{colors}}}
  input A : Name ~ uniform
  input B : Color ~ uniform
  var v : Name = A
  output answer : Name = v
}}
network net = hf "{path}" {{
  prompt "{prompt}"
  answer " {{answer}}"
  position SA = slot(A)
  position SAF = slot(A).first
  position END = last
  position SAM = SA - 1
  position SAP = SA + 1
  position P1 = 1
  position R = 1..2
}}
align M to net as Al {{
  v -> {site}
  answer -> output
}}
check Al {{
  interchange v
  pairs {pairs} seed {seed} batch 7
  expect iia >= 0.99
}}
"""


def spec_text(path: Path, site: str, pairs: int = 40, seed: int = 0) -> str:
    return SPEC.format(names=", ".join(NAMES), colors=", ".join(COLORS), path=path, prompt=PROMPT, site=site,
                       pairs=pairs, seed=seed)


# ───────────────────────── the independent reference ─────────────────────────

class _Handles:
    def __init__(self, handles):
        self.handles = handles

    def remove(self):
        for h in self.handles:
            h.remove()


class Reference:
    """Loads the saved model and tokenizer with transformers alone; runs one pair at a time."""

    def __init__(self, folder: Path):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        self.tok = AutoTokenizer.from_pretrained(folder)
        self.kind = self.model.config.model_type
        self.base = self.model.model if self.kind in LLAMA_LIKE else self.model.gpt_neox
        self.answer_ids = self.tok.convert_tokens_to_ids(ANSWER_TOKENS)

    def encode(self, a: str, b: str) -> tuple[torch.Tensor, dict[str, list[int]]]:
        text = PROMPT.format(A=a, B=b)
        enc = self.tok(text, return_offsets_mapping=True)
        start = text.index(a, len("the"))
        span = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if e > s and s < start + len(a) and e > start]
        n = len(enc["input_ids"])
        where = {"SA": [span[-1]], "SAF": [span[0]], "END": [n - 1], "SAM": [span[-1] - 1], "SAP": [span[-1] + 1],
                 "P1": [1], "R": [1, 2]}
        where["{SA, END}"] = where["SA"] + where["END"]
        where["last"] = where["END"]
        start_b = text.index(b, start + len(a))
        where["SB"] = [max(i for i, (s, e) in enumerate(enc["offset_mapping"]) if e > s and s < start_b + len(b)
                           and e > start_b)]
        return torch.tensor([enc["input_ids"]]), where

    def module(self, kind: str, layer: int):
        block = self.base.layers[layer]
        attn = block.self_attn if self.kind in LLAMA_LIKE else block.attention
        return {"block": block, "attn": attn, "mlp": block.mlp,
                "o_proj": attn.o_proj if self.kind in LLAMA_LIKE else attn.dense,
                **{p: getattr(attn, f"{p}_proj") if self.kind in LLAMA_LIKE else attn.query_key_value
                   for p in "qkv"},
                "mid": block.post_attention_layernorm}[kind]

    def hook(self, site: str, fn):
        """Install `fn(tensor [1, seq, width]) -> tensor | None` at `site`; returns the handle."""
        if site == "embed":  # the stream entering block 0 (Gemma: the scaled embedding)
            site = "resid.pre[0]"
        kind, _, rest = site.partition("[")
        if kind == "head":
            lh, part = rest.split("]")
            layer, h = map(int, lh.split("."))
            part = part.lstrip(".")
        else:
            layer, part, h = int(rest.rstrip("]")), "", 0

        def sliced(t: torch.Tensor, lo: int, hi: int):
            new = fn(t[..., lo:hi])
            if new is None:
                return None
            t = t.clone()
            t[..., lo:hi] = new
            return t

        def on_out(m, args, out):
            t = out[0] if isinstance(out, tuple) else out
            new = fn(t) if part == "" else None
            if part in ("q", "k", "v"):
                if self.kind in LLAMA_LIKE:  # its own projection; GQA: head[L.H].k|v is key/value head H
                    new = sliced(t, h * HD, (h + 1) * HD)
                else:  # NeoX: interleaved [q_h k_h v_h]
                    i = "qkv".index(part)
                    new = sliced(t, (3 * h + i) * HD, (3 * h + i + 1) * HD)
            if new is None:
                return None
            return (new, *out[1:]) if isinstance(out, tuple) else new

        def on_in(m, args, kwargs):
            t = args[0] if args else kwargs["hidden_states"]
            new = fn(t) if part == "" else sliced(t, h * HD, (h + 1) * HD)  # z: o_proj input
            if new is None:
                return None
            return ((new, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": new})

        if kind == "resid.pre":
            return self.module("block", layer).register_forward_pre_hook(on_in, with_kwargs=True)
        if kind == "resid.mid":  # the stream after attention = resid.pre + attn.out: edit it through attn.out
            seen: list[torch.Tensor] = []

            def pre(m, args, kwargs):
                seen[:] = [args[0] if args else kwargs["hidden_states"]]

            def mid(m, args, out):
                a = out[0] if isinstance(out, tuple) else out
                new = fn(seen[0] + a)
                if new is None:
                    return None
                a = a + (new - (seen[0] + a))
                return (a, *out[1:]) if isinstance(out, tuple) else a

            return _Handles([self.module("block", layer).register_forward_pre_hook(pre, with_kwargs=True),
                             self.module("attn", layer).register_forward_hook(mid)])
        if kind == "resid.post":
            return self.module("block", layer).register_forward_hook(on_out)
        if kind in ("attn.out", "mlp.out"):
            return self.module(kind.split(".")[0], layer).register_forward_hook(on_out)
        if kind == "head" and part in ("z", "result"):  # result = z @ W_O[h]: the same downstream
            return self.module("o_proj", layer).register_forward_pre_hook(on_in, with_kwargs=True)
        if kind == "head" and part in ("q", "k", "v"):
            return self.module(part, layer).register_forward_hook(on_out)
        raise ValueError(site)

    def answer(self, ids: torch.Tensor, site: str | None = None, fn=None) -> int:
        handle = self.hook(site, fn) if site else None
        try:
            with torch.no_grad():
                logits = self.model(ids).logits[0, -1]
        finally:
            if handle is not None:
                handle.remove()
        return int(logits[self.answer_ids].argmax())

    def interchange(self, site: str, at: str, dims: tuple[int, int] | torch.Tensor | None, base, source) -> int:
        (b_ids, b_pos), (s_ids, s_pos) = base, source
        got: list[torch.Tensor] = []
        if isinstance(dims, torch.Tensor):  # a basis [width, k]: x' = x + (s·B − x·B)·Bᵀ
            basis = dims

            def read(t):
                got.append(t[:, s_pos[at]].clone())

            def write(t):
                t = t.clone()
                x = t[:, b_pos[at]]
                t[:, b_pos[at]] = x + ((got[0] - x) @ basis) @ basis.T
                return t
        else:
            lo, hi = dims if dims else (0, None)

            def read(t):
                got.append(t[:, s_pos[at], lo:hi].clone())

            def write(t):
                t = t.clone()
                t[:, b_pos[at], lo:hi] = got[0]
                return t

        self.answer(s_ids, site, read)
        return self.answer(b_ids, site, write)

    def multi_interchange(self, base, patches) -> int:
        """`patches`: [((site, at, dims), source)], each read from its own source and written
        together into one base run (slices only)."""
        b_ids, b_pos = base
        values = []
        for (site, at, dims), (s_ids, s_pos) in patches:
            lo, hi = dims if dims else (0, None)
            got: list[torch.Tensor] = []
            self.answer(s_ids, site, lambda t, got=got, at=at, lo=lo, hi=hi, s_pos=s_pos:
                        got.append(t[:, s_pos[at], lo:hi].clone()))
            values.append(got[0])
        handles = []
        for ((site, at, dims), _), value in zip(patches, values):
            lo, hi = dims if dims else (0, None)

            def write(t, at=at, lo=lo, hi=hi, value=value):
                t = t.clone()
                t[:, b_pos[at], lo:hi] = value
                return t
            handles.append(self.hook(site, write))
        try:
            with torch.no_grad():
                logits = self.model(b_ids).logits[0, -1]
        finally:
            for h in handles:
                h.remove()
        return int(logits[self.answer_ids].argmax())


def reference_iia(folder: Path, text: str, site: str, at: str, dims: tuple[int, int] | torch.Tensor | None) -> dict:
    ir = load_text(text, str(folder / "s.cspec"), base_dir=folder)
    [check] = ir.checks
    plan = compile_check(ir, check)
    pairs = plan.claims[0].pairs
    ref = Reference(folder)
    names = lambda col: [NAMES[int(i)] for i in col]  # noqa: E731
    colors = lambda col: [COLORS[int(i)] for i in col]  # noqa: E731
    base = list(zip(names(pairs.base["A"]), colors(pairs.base["B"])))
    source = list(zip(names(pairs.sources[0]["A"]), colors(pairs.sources[0]["B"])))
    expected = [int(i) for i in pairs.expected["answer"]]
    kept = hits = moved = 0
    for (ba, bb), (sa, sb), want in zip(base, source, expected):
        b, s = ref.encode(ba, bb), ref.encode(sa, sb)
        clean_b, clean_s = ref.answer(b[0]), ref.answer(s[0])
        if clean_b != NAMES.index(ba) or clean_s != NAMES.index(sa):
            continue
        kept += 1
        got = ref.interchange(site, at, dims, b, s)
        hits += got == want
        moved += got != clean_b
    return {"kept": kept, "hits": hits, "moved": moved}


def tool_result(folder: Path, text: str):
    ir = load_text(text, str(folder / "s.cspec"), base_dir=folder)
    [result] = run_checks(ir, CheckOptions())
    return result


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_thread():
        yield


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    built: dict[tuple[str, float, float], Path] = {}

    def get(family: str, noise: float = 0.0, qk: float = 0.0) -> Path:
        if (family, noise, qk) not in built:
            built[family, noise, qk] = build_net(tmp_path_factory.mktemp(family.replace("-", "_")), family, noise,
                                                 qk=qk)
        return built[family, noise, qk]

    return get


BASES: dict[str, torch.Tensor] = {}  # basis file name -> [width, k], written by `basis_file`


def basis_file(folder: Path, name: str, columns: list[dict[int, float]], width: int = D) -> str:
    """Save an orthonormal basis (columns given as {dimension: weight}, normalised here) and return
    the featurizer that names it."""
    from safetensors.torch import save_file

    basis = torch.zeros(width, len(columns))
    for j, col in enumerate(columns):
        for i, w in col.items():
            basis[i, j] = w
    basis = basis / basis.norm(dim=0, keepdim=True)
    save_file({"W": basis.contiguous()}, str(folder / name))
    BASES[name] = basis
    return f'basis(file="{name}", key="W")'


def parse(claim: str) -> tuple[str, str, tuple[int, int] | torch.Tensor | None]:
    site, _, rest = claim.partition(" @ ")
    at, _, feat = rest.partition(" : ")
    if feat.startswith("basis("):
        return site, at, BASES[feat.split('"')[1]]
    dims = tuple(int(x) for x in feat.strip("[]").split(":")) if feat else None
    return site, at, dims  # type: ignore[return-value]


def compare(folder: Path, claim: str, pairs: int = 40, seed: int = 0):
    text = spec_text(folder, claim, pairs, seed)
    result = tool_result(folder, text)
    assert result.status in ("passed", "failed"), (claim, result.status, result.reason)
    [c] = result.claims
    want = reference_iia(folder, text, *parse(claim))
    got = {"kept": c.kept, "hits": c.iia.successes if hasattr(c.iia, "successes") else round(c.iia.estimate * c.kept),
           "moved": c.moved}
    assert got == want, (claim, got, want)
    return result


# (claim, holds): the truth of each claim on the hand-set network (module docstring)
VERDICTS = [
    ("resid.post[0] @ END", True),
    ("resid.post[1] @ END", True),
    ("resid.pre[1] @ END", True),
    ("resid.pre[0] @ END", False),  # the last token's embedding carries nothing of A
    ("resid.mid[0] @ END", True),
    ("resid.mid[1] @ END", True),
    ("attn.out[0] @ END", True),
    ("attn.out[1] @ END", False),  # layer 1's attention writes nothing
    ("mlp.out[0] @ END", False),  # MLP 0 writes nothing
    ("mlp.out[1] @ END", True),  # MLP 1 moves ANS to ANS2, the only dimensions read
    ("head[0.1].z @ END", True),
    ("head[0.0].z @ END", False),  # carries A (same values as head 1), dropped by the out-projection
    ("head[0.3].z @ END", False),  # carries the colour
    ("head[0.1].result @ END", True),
    ("head[0.0].result @ END", False),
    ("resid.pre[0] @ SA", True),  # slot(A).last: `##bel` carries Annabel
    ("resid.pre[0] @ SAF", False),  # slot(A).first: `Anna` carries nothing
    ("resid.post[0] @ SA", False),  # nothing reads position A after layer 0
    ("resid.pre[1] @ SA", False),
    ("resid.post[0] @ END : [40:44]", True),  # ANS
    ("resid.post[0] @ END : [40:42]", False),  # half of ANS
    ("resid.post[0] @ END : [44:48]", False),  # JUNK
    ("resid.post[1] @ END : [48:52]", True),  # ANS2
    ("resid.post[1] @ END : [40:44]", False),  # ANS after MLP 1 has read it
    ("head[0.1].z @ END : [0:1]", False),  # one coordinate of four (a 1-d subspace)
]
# head[L.H].v: on Llama with GQA, H is a key/value head (kv head 0 serves query heads 0 and 1); on
# NeoX every query head has its own values (head 0's are never read)
V_VERDICTS = {"llama-gqa": [("head[0.0].v @ SA", True), ("head[0.1].v @ SA", False)],
              "neox-parallel": [("head[0.0].v @ SA", False), ("head[0.1].v @ SA", True)],
              "neox-sequential": [("head[0.0].v @ SA", False), ("head[0.1].v @ SA", True)]}
CASES = [(f, c, h) for f in KINDS for c, h in VERDICTS + V_VERDICTS[f]
         if not (f == "neox-parallel" and c.startswith("resid.mid"))]


@pytest.mark.parametrize(("family", "claim", "holds"), CASES, ids=[f"{f}:{c}" for f, c, _ in CASES])
def test_verdict_and_iia_equal_the_reference_on_hand_set_weights(nets, family, claim, holds):
    result = compare(nets(family), claim)
    [c] = result.claims
    assert c.kept == 40  # the hand-set network is right on every input
    if holds:
        assert result.status == "passed" and c.iia.estimate == 1.0 and c.moved > 0, (claim, c.iia)
    else:
        assert result.status == "failed", (claim, c.iia)


def test_parallel_residual_neox_has_no_resid_mid(nets):
    result = tool_result(nets("neox-parallel"), spec_text(nets("neox-parallel"), "resid.mid[0] @ END"))
    assert result.status == "error" and "use_parallel_residual" in result.reason


NOISY = ["resid.post[0] @ END", "head[0.1].z @ END : [0:2]", "head[0.0].v @ SA",
         "resid.pre[0] @ SA", "resid.pre[0] @ SAF", "head[0.1].result @ END", "mlp.out[1] @ END",
         # offsets, an index and a range (Llama: counted with its BOS), several positions at once
         "resid.pre[0] @ SAM", "resid.pre[0] @ P1", "resid.pre[0] @ R", "resid.pre[0] @ {SA, END}",
         "head[0.1].z @ {SA, END} : [0:2]"]


@pytest.mark.parametrize(("family", "noise"), [("llama-gqa", 0.05), ("neox-sequential", 0.08), ("neox-parallel", 0.08)])
def test_iia_equals_the_reference_on_noisy_weights(nets, family, noise):
    """Noise in every weight (queries and keys: attention is no longer uniform, so rotary positions
    and the padding of prompts of two lengths matter): partial keep rates and IIAs, equal to the
    reference pair by pair in count."""
    folder = nets(family, noise)
    for claim in NOISY + ([] if family == "neox-parallel" else ["resid.mid[0] @ END", "resid.mid[1] @ END"]):
        compare(folder, claim)


def test_a_tokenizer_that_pads_on_the_left_gives_the_same_numbers(nets, tmp_path):
    """A tokenizer saved with `padding_side="left"` (common for Llama checkpoints): causalspec
    must still place every real token where it sits alone (docs §5.4), with rotary positions and
    prompts of two lengths in one batch."""
    import json
    import shutil

    folder = tmp_path / "left"
    shutil.copytree(nets("llama-gqa", 0.05), folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "padding_side": "left"}))
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(folder).padding_side == "left"
    for claim in ["resid.post[0] @ END", "resid.pre[0] @ SA", "head[0.1].z @ END : [0:2]", "resid.pre[0] @ R"]:
        compare(folder, claim)


@pytest.mark.parametrize("family", ["llama-gqa", "neox-parallel"])
def test_query_and_key_sites_with_position_dependent_attention_equal_the_reference(nets, family):
    """Random queries and keys in layer 0 (attention depends on tokens and rotary positions):
    `head[L.H].q` is the query head's slice before rotary, `.k` (GQA: key/value head H) likewise."""
    folder = nets(family, 0.0, 0.2)
    for claim in ["head[0.0].k @ SA", "head[0.1].q @ END", "head[0.1].k @ {SA, END}", "resid.pre[0] @ P1"]:
        compare(folder, claim)


@pytest.mark.parametrize("family", ["llama-gqa", "neox-sequential"])
def test_one_dimensional_basis_claims_equal_the_reference(nets, family, tmp_path):
    """Fixed 1-d subspaces (`basis(file=…)`): a direction mixing two answer dimensions is a partial
    intervention; the direction of a dimension nothing reads never moves the output."""
    import shutil

    folder = tmp_path / "net"
    shutil.copytree(nets(family, 0.05), folder)
    mixed = basis_file(folder, "mixed.safetensors", [{ANS: 1.0, ANS + 1: -1.0}])
    junk = basis_file(folder, "junk.safetensors", [{JUNK: 1.0}])
    two = basis_file(folder, "two.safetensors", [{ANS: 1.0, ANS + 2: 1.0}, {ANS + 1: 1.0, ANS + 3: 1.0}])
    moved = []
    for claim in [f"resid.post[0] @ END : {mixed}", f"resid.post[0] @ END : {junk}", f"attn.out[0] @ END : {two}"]:
        [c] = compare(folder, claim).claims
        moved.append(c.moved)
    assert moved[0] > 0 and moved[1] == 0


def test_random_gemma_with_one_key_value_head_equals_the_reference(tmp_path):
    """A random-init Gemma (scaled embedding, RMSNorm with 1 + weight, one key/value head for four
    query heads, head_dim 16 != hidden / heads): no hand-set mechanism, so partial keep rates and
    IIAs at every kind of site, equal to the reference."""
    from causalspec.testing.tiny import build_tiny_model

    tok = build_word_tokenizer(WORDS, add_bos=True)
    build_tiny_model("gemma", None, tmp_path, seed=0, tokenizer=tok, hidden_size=D, num_attention_heads=HEADS,
                     num_key_value_heads=1, head_dim=HD, initializer_range=0.3)
    moved = 0
    for claim in ["resid.post[0] @ END", "embed @ SA", "head[0.2].z @ END", "head[0.0].v @ SA", "resid.mid[1] @ END",
                  "mlp.out[0] @ END", "head[1.3].result @ END", "resid.pre[1] @ R"]:
        [c] = compare(tmp_path, claim, pairs=80).claims
        assert 0 < c.kept < 80
        moved += c.moved
    assert moved > 0


MULTI = """
model M {{
  domain Name = enum {{{names}}}
  domain Color = enum {{{colors}}}
  input A : Name ~ uniform
  input B : Color ~ uniform
  var v : Name = A
  var c : Color = B
  output answer : Name = v
}}
network net = hf "{path}" {{
  prompt "{prompt}"
  answer " {{answer}}"
  position SA = slot(A)
  position SB = slot(B)
}}
align M to net as Al {{
  v -> {v_site}
  c -> {c_site}
  answer -> output
}}
check Al {{
  interchange {{v | c}}, {{v, c}}, v
  pairs 40 seed 3 batch 6
  expect iia >= 0.99 each
}}
"""


@pytest.mark.parametrize(("family", "v_site", "c_site"), [
    ("llama-gqa", "resid.pre[0] @ SA", "resid.pre[0] @ SB"),  # one module, two positions, two sources
    ("neox-sequential", "resid.pre[0] @ SA", "head[0.3].z @ last"),
    ("neox-parallel", "head[0.1].z @ last : [0:2]", "resid.pre[0] @ SB"),
])
def test_multi_source_interchange_equals_the_reference(nets, family, v_site, c_site):
    """`{v | c}`: v from one source, c from another, in one base run (positions resolved per source:
    the names' token counts differ); `{v, c}`: both from one source. Noisy weights, so the colour's
    site can move the output too."""
    folder = nets(family, 0.08 if family.startswith("neox") else 0.05)
    text = MULTI.format(names=", ".join(NAMES), colors=", ".join(COLORS), path=folder, prompt=PROMPT,
                        v_site=v_site, c_site=c_site)
    result = tool_result(folder, text)
    assert result.status in ("passed", "failed"), result.reason
    ir = load_text(text, str(folder / "s.cspec"), base_dir=folder)
    [check] = ir.checks
    plan = compile_check(ir, check)
    ref = Reference(folder)
    sites = {"v": parse(v_site), "c": parse(c_site)}
    for claim, cp in zip(result.claims, plan.claims):
        assert claim.label == cp.label
        pairs = cp.pairs
        row = lambda d, j: (NAMES[int(d["A"][j])], COLORS[int(d["B"][j])])  # noqa: E731
        kept = hits = moved = 0
        for j in range(pairs.n):
            base = ref.encode(*row(pairs.base, j))
            sources = [ref.encode(*row(src, j)) for src in pairs.sources]
            clean = ref.answer(base[0])
            if clean != NAMES.index(row(pairs.base, j)[0]) or any(
                    ref.answer(s[0]) != NAMES.index(row(src, j)[0]) for s, src in zip(sources, pairs.sources)):
                continue
            kept += 1
            got = ref.multi_interchange(base, [(sites[var], sources[g]) for g, group in enumerate(cp.groups)
                                               for var in group])
            hits += got == int(pairs.expected["answer"][j])
            moved += got != clean
        assert (claim.kept, claim.iia.successes, claim.moved) == (kept, hits, moved), (claim.label, family)
